//! The service side of an ioreq channel (feature `ioreq`): what the UART
//! and platform services share. The core queues requests on the channel's
//! request ring; the service takes them, answers reads, and waits for more
//! with `IOREQ_WAIT`. The last answer of a round travels in RSI of that
//! call ([`hypercall_abi::ioreq::Response::to_word`]); earlier ones on the
//! response ring.

use hypercall_abi::ioreq::{Request, Response, GPA, PAGES, VERSION};
use hypercall_abi::Status;
use shm_ring::{End, RingError};

/// What [`Server::next`] found on the request ring.
#[derive(Debug)]
pub enum Next {
    /// A request.
    Request(Request),
    /// Nothing more this round.
    Empty,
    /// The ring was corrupt (a peer's bug): it was reset and the round
    /// ends.
    Reset(RingError),
}

/// One end of the ioreq channel, with the answer held for the next wait.
pub struct Server<'a> {
    end: End<'a>,
    held: Option<Response>,
}

impl Server<'static> {
    /// The channel the core maps for this service at `ioreq::GPA`.
    ///
    /// # Safety
    ///
    /// Only in a device service (the core maps its ioreq pages there, for
    /// it alone), and once.
    pub unsafe fn attach() -> Result<Self, RingError> {
        // SAFETY: the caller's contract: the pages are mapped at GPA for
        // this domain, whose other end is the core.
        let channel =
            unsafe { shm_ring::Channel::attach_raw(GPA as *mut u8, (PAGES * 4096) as usize) }?;
        Ok(Self::new(channel.into_responder()))
    }
}

impl<'a> Server<'a> {
    /// A server over the responder end of an ioreq channel.
    #[inline]
    pub fn new(end: End<'a>) -> Self {
        Self { end, held: None }
    }

    /// The channel (to defer releases, skip to a position, ...).
    #[inline]
    pub fn end(&self) -> &End<'a> {
        &self.end
    }

    /// The next request of this round.
    #[inline]
    pub fn next(&mut self, scratch: &mut [u8]) -> Next {
        match self.end.rx().pop_versioned::<Request>(VERSION, scratch) {
            Ok(Some(r)) => Next::Request(r),
            Ok(None) => Next::Empty,
            Err(e) => {
                self.end.rx().reset();
                Next::Reset(e)
            }
        }
    }

    /// Answers a read. `false` when an earlier answer of the round had to
    /// go on the response ring and it was full (that read goes unanswered
    /// until the core gives up on it).
    #[inline]
    pub fn answer(&mut self, answer: Response) -> bool {
        match self.held.replace(answer) {
            Some(earlier) => self.end.tx().push_versioned(VERSION, &earlier).is_ok(),
            None => true,
        }
    }

    /// The held answer as the word for RSI (0: none); it is no longer held.
    #[inline]
    fn take_held(&mut self) -> u64 {
        self.held.take().map_or(0, Response::to_word)
    }

    /// `IOREQ_WAIT`: hands the core this round's answers and waits for
    /// requests, or `timeout` TSC ticks (0: no limit).
    #[inline]
    pub fn wait(&mut self, timeout: u64) -> Result<(), Status> {
        let word = self.take_held();
        crate::call(crate::Call::IoReqWait, timeout, word, 0, 0).map(drop)
    }

    /// `IOREQ_DONE`: hands the core the answers now, without waiting.
    pub fn done(&mut self) {
        let word = self.take_held();
        let _ = crate::call(crate::Call::IoReqDone, 0, word, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(4096))]
    struct Pages([u8; 8192]);

    #[test]
    fn the_last_answer_is_held_and_earlier_ones_go_on_the_ring() {
        let mut pages = Box::new(Pages([0; 8192]));
        let (core, service) = shm_ring::Channel::init(&mut pages.0).unwrap().split();
        let mut s = Server::new(service);
        let mut scratch = [0u8; 64];
        assert!(matches!(s.next(&mut scratch), Next::Empty));
        let r = |seq| Response {
            seq,
            guest: 1,
            value: seq as u8,
        };
        assert!(s.answer(r(1)));
        assert!(s.answer(r(2)));
        assert!(s.answer(r(3)));
        // 1 and 2 on the ring, 3 held.
        let got: Vec<Response> = core::iter::from_fn(|| {
            core.rx()
                .pop_versioned::<Response>(VERSION, &mut scratch)
                .unwrap()
        })
        .collect();
        assert_eq!(got, [r(1), r(2)]);
        assert_eq!(Response::from_word(s.take_held()), Ok(Some(r(3))));
        assert_eq!(s.take_held(), 0);
        // A request the core queued.
        core.tx()
            .push_versioned(VERSION, &Request::Detach { guest: 4 })
            .unwrap();
        assert!(matches!(
            s.next(&mut scratch),
            Next::Request(Request::Detach { guest: 4 })
        ));
    }
}
