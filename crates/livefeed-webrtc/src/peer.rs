//! What a viewer's session ([`crate::WhepSession`]) and a publisher's
//! ([`crate::WhipSession`]) share: one str0m [`Rtc`] driven sans-IO, its connection state
//! (connecting → connected ⇄ disconnected → closed, with the two timeouts), and the queue of
//! datagrams [`crate::Poll`] hands out.
//!
//! Every mutation of the `Rtc` is followed by [`PeerCore::drain`] (str0m's rule: poll its
//! output dry before the next input); the events that are not about the connection itself
//! wait in [`PeerCore::take_event`] for the session that owns the core.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcError};

use crate::error::WhepError;
use crate::session::{CloseReason, Poll, Transport};

/// Where a session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    Connecting { deadline: Instant },
    Connected,
    Disconnected { deadline: Instant },
    Closed(CloseReason),
}

/// One str0m peer connection, its state and its outgoing datagrams.
pub(crate) struct PeerCore {
    pub(crate) rtc: Rtc,
    pub(crate) state: State,
    disconnect_timeout: Duration,
    outbox: VecDeque<Poll>,
    events: VecDeque<Event>,
    rtc_timeout: Instant,
    pub(crate) now: Instant,
}

impl PeerCore {
    /// A peer that must connect within `connect_timeout` and closes after
    /// `disconnect_timeout` of ICE disconnection.
    pub(crate) fn new(
        rtc: Rtc,
        connect_timeout: Duration,
        disconnect_timeout: Duration,
        now: Instant,
    ) -> Self {
        PeerCore {
            rtc,
            state: State::Connecting {
                deadline: now + connect_timeout,
            },
            disconnect_timeout,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            rtc_timeout: now,
            now,
        }
    }

    /// See [`crate::WhepSession::accepts`].
    pub(crate) fn accepts(
        &self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        destination: SocketAddr,
        datagram: &[u8],
    ) -> bool {
        match input(now, transport, source, destination, datagram) {
            Ok(input) => self.rtc.accepts(&input),
            Err(_) => false,
        }
    }

    /// See [`crate::WhepSession::handle_datagram`].
    pub(crate) fn handle_datagram(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        destination: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), WhepError> {
        if self.is_closed() {
            return Ok(());
        }
        let input = input(now, transport, source, destination, datagram).map_err(|e| {
            WhepError::UnrecognizedDatagram {
                source_addr: source,
                reason: e.to_string(),
            }
        })?;
        self.now = self.now.max(now);
        let result = self.rtc.handle_input(input);
        self.after_input(result)
    }

    /// See [`crate::WhepSession::handle_timeout`].
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Result<(), WhepError> {
        self.now = self.now.max(now);
        match self.state {
            State::Connecting { deadline } if now >= deadline => {
                self.close_because(CloseReason::ConnectTimeout);
            }
            State::Disconnected { deadline } if now >= deadline => {
                self.close_because(CloseReason::Disconnected);
            }
            _ => {}
        }
        let result = self.rtc.handle_input(Input::Timeout(now));
        self.after_input(result)
    }

    /// See [`crate::WhepSession::poll`].
    pub(crate) fn poll(&mut self) -> Poll {
        if let Some(transmit) = self.outbox.pop_front() {
            return transmit;
        }
        let wake = match self.state {
            State::Connecting { deadline } | State::Disconnected { deadline } => {
                deadline.min(self.rtc_timeout)
            }
            State::Connected | State::Closed(_) => self.rtc_timeout,
        };
        Poll::Wait(wake)
    }

    /// The next str0m event the core did not consume (media, keyframe requests, stats…).
    pub(crate) fn take_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed(_))
    }

    pub(crate) fn close_reason(&self) -> Option<&CloseReason> {
        match &self.state {
            State::Closed(reason) => Some(reason),
            _ => None,
        }
    }

    pub(crate) fn close_because(&mut self, reason: CloseReason) {
        if self.is_closed() {
            return;
        }
        tracing::debug!(?reason, "WebRTC session closing");
        self.state = State::Closed(reason);
        if let Err(e) = self.rtc.close() {
            tracing::debug!(error = %e, "str0m close");
            self.rtc.disconnect();
        }
        if let Err(e) = self.drain() {
            tracing::debug!(error = %e, "str0m drain while closing");
        }
    }

    /// Drains str0m after an input.
    pub(crate) fn after_input(&mut self, result: Result<(), RtcError>) -> Result<(), WhepError> {
        if let Err(e) = result {
            self.fail(&e);
            return Err(e.into());
        }
        self.drain()
    }

    fn fail(&mut self, e: &RtcError) {
        if !self.is_closed() {
            tracing::debug!(error = %e, "WebRTC session failed");
            self.state = State::Closed(CloseReason::Failed(e.to_string()));
        }
        self.rtc.disconnect();
        self.outbox.clear();
    }

    /// Polls str0m until it has nothing more to say (str0m's single-mutation invariant).
    pub(crate) fn drain(&mut self) -> Result<(), WhepError> {
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.rtc_timeout = t;
                    return Ok(());
                }
                Ok(Output::Transmit(t)) => self.outbox.push_back(Poll::Transmit {
                    destination: t.destination,
                    source: t.source,
                    transport: match t.proto {
                        Protocol::Udp => Transport::Udp,
                        _ => Transport::Tcp,
                    },
                    datagram: t.contents.into(),
                }),
                Ok(Output::Event(e)) => self.on_event(e),
                Err(e) => {
                    self.fail(&e);
                    return Err(e.into());
                }
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        match &event {
            Event::Connected => {
                if matches!(self.state, State::Connecting { .. }) {
                    self.state = State::Connected;
                }
            }
            Event::IceConnectionStateChange(ice) => self.on_ice_state(*ice),
            Event::Closed if !self.is_closed() => {
                self.state = State::Closed(CloseReason::Remote);
            }
            _ => {}
        }
        self.events.push_back(event);
    }

    fn on_ice_state(&mut self, ice: IceConnectionState) {
        match (ice, &self.state) {
            (IceConnectionState::Disconnected, State::Connected) => {
                self.state = State::Disconnected {
                    deadline: self.now + self.disconnect_timeout,
                };
            }
            (
                IceConnectionState::Connected | IceConnectionState::Completed,
                State::Disconnected { .. },
            ) => self.state = State::Connected,
            _ => {}
        }
    }
}

/// Adds the server's host candidates to `rtc`: UDP ones, and passive TCP twins.
pub(crate) fn add_host_candidates(
    rtc: &mut Rtc,
    candidates: &[SocketAddr],
    tcp_candidates: &[SocketAddr],
) -> Result<(), WhepError> {
    if candidates.is_empty() {
        return Err(WhepError::NoCandidates);
    }
    for &addr in candidates {
        let candidate =
            Candidate::host(addr, Protocol::Udp).map_err(|e| WhepError::BadCandidate {
                addr,
                reason: e.to_string(),
            })?;
        rtc.add_local_candidate(candidate);
    }
    for &addr in tcp_candidates {
        let candidate = Candidate::builder()
            .tcp()
            .host(addr)
            .tcptype(TcpType::Passive)
            .build()
            .map_err(|e| WhepError::BadCandidate {
                addr,
                reason: e.to_string(),
            })?;
        rtc.add_local_candidate(candidate);
    }
    Ok(())
}

fn input<'a>(
    now: Instant,
    transport: Transport,
    source: SocketAddr,
    destination: SocketAddr,
    datagram: &'a [u8],
) -> Result<Input<'a>, str0m::error::NetError> {
    Ok(Input::Receive(
        now,
        Receive {
            proto: transport.protocol(),
            source,
            destination,
            contents: datagram.try_into()?,
        },
    ))
}
