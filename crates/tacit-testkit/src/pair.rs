//! An in-memory connection between a dialer and an acceptor with simulated
//! time and latency (the idea of quinn-proto's test `Pair`), for tests of
//! the sans-IO handshake (feature `handshake`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use tacit_handshake::{Event, Handshake, HandshakeConfig};

/// Which end of the pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The dialer.
    Dialer,
    /// The acceptor.
    Acceptor,
}

/// A dialer and an acceptor joined by a simulated control stream.
#[derive(Debug)]
pub struct Pair {
    /// The dialer's machine.
    pub dialer: Handshake,
    /// The acceptor's machine.
    pub acceptor: Handshake,
    /// Simulated time.
    pub now: Instant,
    /// One-way delay of the simulated stream.
    pub latency: Duration,
    /// Events the dialer produced, in order.
    pub dialer_events: Vec<Event>,
    /// Events the acceptor produced, in order.
    pub acceptor_events: Vec<Event>,
    in_flight: VecDeque<(Instant, Side, Bytes)>,
}

impl Pair {
    /// A pair with 10 ms one-way latency; the dialer has queued its `Hello`.
    pub fn new(dialer: HandshakeConfig, acceptor: HandshakeConfig) -> Self {
        let now = Instant::now();
        Self {
            dialer: Handshake::dialer(Arc::new(dialer), now),
            acceptor: Handshake::acceptor(Arc::new(acceptor), now),
            now,
            latency: Duration::from_millis(10),
            dialer_events: Vec::new(),
            acceptor_events: Vec::new(),
            in_flight: VecDeque::new(),
        }
    }

    /// The machine at `side`.
    pub fn side(&mut self, side: Side) -> &mut Handshake {
        match side {
            Side::Dialer => &mut self.dialer,
            Side::Acceptor => &mut self.acceptor,
        }
    }

    /// Delivers raw bytes to `side` now, as if the peer had sent them.
    pub fn inject(&mut self, to: Side, bytes: &[u8]) {
        let now = self.now;
        self.side(to).handle_data(bytes, now);
        self.collect();
    }

    /// Runs until nothing is in flight and no timer is due, or `max_steps`
    /// steps have passed; returns whether it went idle.
    pub fn drive(&mut self, max_steps: usize) -> bool {
        for _ in 0..max_steps {
            self.collect();
            if !self.step() {
                return true;
            }
        }
        false
    }

    /// Runs until idle (at most 10,000 steps).
    pub fn drive_to_idle(&mut self) {
        let idle = self.drive(10_000);
        debug_assert!(idle, "pair did not go idle");
    }

    /// Moves transmitted bytes onto the wire and events into the logs.
    fn collect(&mut self) {
        let arrival = self.now + self.latency;
        while let Some(bytes) = self.dialer.poll_transmit() {
            self.in_flight.push_back((arrival, Side::Acceptor, bytes));
        }
        while let Some(bytes) = self.acceptor.poll_transmit() {
            self.in_flight.push_back((arrival, Side::Dialer, bytes));
        }
        while let Some(event) = self.dialer.poll_event() {
            self.dialer_events.push(event);
        }
        while let Some(event) = self.acceptor.poll_event() {
            self.acceptor_events.push(event);
        }
    }

    /// Advances to the next delivery or timer and handles it; false if none.
    fn step(&mut self) -> bool {
        let next_delivery = self.in_flight.front().map(|(at, _, _)| *at);
        let next_timer = [self.dialer.poll_timeout(), self.acceptor.poll_timeout()].into_iter().flatten().min();
        let next = match (next_delivery, next_timer) {
            (Some(d), Some(t)) => d.min(t),
            (Some(d), None) => d,
            (None, Some(t)) => t,
            (None, None) => return false,
        };
        self.now = self.now.max(next);
        while self.in_flight.front().is_some_and(|(at, _, _)| *at <= self.now) {
            if let Some((_, to, bytes)) = self.in_flight.pop_front() {
                let now = self.now;
                self.side(to).handle_data(&bytes, now);
            }
        }
        let now = self.now;
        self.dialer.handle_timeout(now);
        self.acceptor.handle_timeout(now);
        true
    }
}
