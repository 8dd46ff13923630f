//! The line queue: a preallocated bounded ring from many producers to one consumer at a time,
//! and the counters that flush waits on.
//!
//! Each line pushed gets a *position*: the value of `tail` it claimed. Positions are the
//! sequence numbers of the flush barrier. Only the holder of the consumer role (see
//! `consumer.rs`) pops, in position order, and publishes `completed`: every line at a position
//! below it is finished (written, sent to the fallback, or failed). A flush takes `tail` when it
//! starts and waits until `completed` reaches it; no message travels through the queue.
//!
//! The ring follows D. Vyukov's bounded queue: each slot carries a stamp that says whose turn it
//! is. A producer claims a position with one compare-and-swap on `tail` when the slot's stamp
//! says it is free, stores the line, and sets the stamp to `position + 1`; the consumer takes a
//! slot whose stamp is `position + 1` and sets it to `position + capacity`, freeing it for the
//! next lap. No allocation after construction. Each slot's value sits in a `Mutex` that the
//! stamps make uncontended (whoever locks it owns the slot by the protocol), so taking it is a
//! single compare-and-swap, never a wait; it keeps the crate free of `unsafe`.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};

use bytes::Bytes;

use super::sync::{lock, AtomicBool, AtomicU64, Mutex};

/// One queued line and the writer it is for.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) sink: u32,
    pub(crate) line: Bytes,
}

struct Slot {
    stamp: AtomicU64,
    entry: Mutex<Option<Entry>>,
}

/// What [`LineQueue::pop`] found at the consumer's position.
#[derive(Debug)]
pub(crate) enum Pop {
    /// The line at the position.
    Entry(Entry),
    /// Nothing has been pushed at the position.
    Empty,
    /// A producer has claimed the position but not yet stored its line: it is a few
    /// instructions away, unless it was preempted.
    InFlight,
}

/// The ring, the flush counters, and the flags producers and the worker share.
pub(crate) struct LineQueue {
    slots: Box<[Slot]>,
    mask: u64,
    /// The next position a producer claims. Everything below it is accepted.
    tail: AtomicU64,
    /// The next position the consumer takes (written only by the consumer-role holder).
    head: AtomicU64,
    /// Every line at a position below this is finished.
    completed: AtomicU64,
    /// Set by the worker before it parks; a producer that sees it wakes the worker.
    idle: AtomicBool,
    /// Set once the pipeline closes: producers write synchronously from then on.
    closing: AtomicBool,
}

impl LineQueue {
    /// A ring with room for at least `capacity` lines (rounded up to a power of two).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(2).next_power_of_two();
        let slots = (0..capacity as u64)
            .map(|i| Slot {
                stamp: AtomicU64::new(i),
                entry: Mutex::new(None),
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        LineQueue {
            slots,
            mask: capacity as u64 - 1,
            tail: AtomicU64::new(0),
            head: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            idle: AtomicBool::new(false),
            closing: AtomicBool::new(false),
        }
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.mask + 1
    }

    /// Queues `entry`; hands it back when the ring is full.
    ///
    /// The claim is `SeqCst` so that it is ordered with the worker's `idle` flag (see
    /// [`LineQueue::should_wake`]) and with `closing` (see [`LineQueue::close`]).
    #[inline]
    pub(crate) fn push(&self, entry: Entry) -> Result<(), Entry> {
        let mut pos = self.tail.load(Relaxed);
        loop {
            let slot = &self.slots[(pos & self.mask) as usize];
            let stamp = slot.stamp.load(Acquire);
            if stamp == pos {
                match self
                    .tail
                    .compare_exchange_weak(pos, pos + 1, SeqCst, Relaxed)
                {
                    Ok(_) => {
                        *lock(&slot.entry) = Some(entry);
                        slot.stamp.store(pos + 1, Release);
                        return Ok(());
                    }
                    Err(now) => pos = now,
                }
            } else if stamp < pos {
                // The slot still holds the line from one lap ago: the ring is full.
                return Err(entry);
            } else {
                pos = self.tail.load(Relaxed);
            }
        }
    }

    /// Takes the line at the consumer's position. Only the consumer-role holder calls this.
    pub(crate) fn pop(&self) -> Pop {
        let pos = self.head.load(Relaxed);
        let slot = &self.slots[(pos & self.mask) as usize];
        if slot.stamp.load(Acquire) == pos + 1 {
            let entry = lock(&slot.entry).take();
            slot.stamp.store(pos + self.capacity(), Release);
            self.head.store(pos + 1, Release);
            match entry {
                Some(entry) => Pop::Entry(entry),
                // Unreachable by the protocol; treat as an empty slot rather than panic.
                None => Pop::Empty,
            }
        } else if self.tail.load(SeqCst) > pos {
            Pop::InFlight
        } else {
            Pop::Empty
        }
    }

    /// Positions claimed so far: lines accepted into the ring. A flush waits for this.
    pub(crate) fn tail(&self) -> u64 {
        self.tail.load(SeqCst)
    }

    /// The consumer's position.
    pub(crate) fn head(&self) -> u64 {
        self.head.load(Acquire)
    }

    /// True when a line is queued or being queued.
    pub(crate) fn has_lines(&self) -> bool {
        self.tail.load(SeqCst) > self.head.load(Acquire)
    }

    pub(crate) fn completed(&self) -> u64 {
        self.completed.load(Acquire)
    }

    /// Publishes the barrier (consumer-role holder only). Never moves backwards.
    pub(crate) fn set_completed(&self, position: u64) {
        self.completed.fetch_max(position, AcqRel);
    }

    /// The worker is about to park. Returns true if it must not, because lines arrived (or
    /// the queue is closing) — then the flag is cleared again.
    pub(crate) fn park_worker(&self) -> bool {
        self.idle.store(true, SeqCst);
        if self.has_lines() || self.closing.load(SeqCst) {
            self.idle.store(false, SeqCst);
            return true;
        }
        false
    }

    /// After a push: true (once) if the worker parked and must be woken.
    #[inline]
    pub(crate) fn should_wake(&self) -> bool {
        self.idle.load(SeqCst) && self.idle.swap(false, AcqRel)
    }

    /// Marks the worker as running (it was woken or found work).
    pub(crate) fn unpark_worker(&self) {
        self.idle.store(false, SeqCst);
    }

    /// Closes the queue: producers that have not pushed yet write synchronously, and a producer
    /// whose push raced with the close sees `is_closing` afterwards and drains the queue itself.
    pub(crate) fn close(&self) {
        self.closing.store(true, SeqCst);
    }

    #[inline]
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(SeqCst)
    }
}

impl std::fmt::Debug for LineQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineQueue")
            .field("capacity", &self.capacity())
            .field("tail", &self.tail.load(Relaxed))
            .field("head", &self.head.load(Relaxed))
            .field("completed", &self.completed.load(Relaxed))
            .finish()
    }
}

#[cfg(all(test, kakashi_loom))]
mod loom_tests {
    //! Model checks of the queue protocol: run with
    //! `RUSTFLAGS="--cfg kakashi_loom" cargo test --release --lib loom_`.
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    fn entry(sink: u32, n: u8) -> Entry {
        Entry {
            sink,
            line: Bytes::from(vec![n]),
        }
    }

    /// Takes every line at and after the head until `until` positions are finished.
    fn consume(queue: &LineQueue, until: u64, seen: &mut Vec<(u32, u8)>) {
        while queue.head() < until {
            match queue.pop() {
                Pop::Entry(e) => seen.push((e.sink, e.line[0])),
                Pop::Empty | Pop::InFlight => thread::yield_now(),
            }
        }
        queue.set_completed(queue.head());
    }

    #[test]
    fn loom_two_producers_one_consumer_lose_nothing_and_keep_each_producers_order() {
        loom::model(|| {
            let queue = Arc::new(LineQueue::new(2));
            let producers: Vec<_> = (0..2u32)
                .map(|p| {
                    let queue = Arc::clone(&queue);
                    thread::spawn(move || {
                        let mut pushed = 0;
                        for n in 0..2u8 {
                            // A full ring hands the line back: the overflow path would write
                            // it itself; here it is simply retried.
                            let mut e = entry(p, n);
                            loop {
                                match queue.push(e) {
                                    Ok(()) => break,
                                    Err(back) => {
                                        e = back;
                                        thread::yield_now();
                                    }
                                }
                            }
                            pushed += 1;
                        }
                        pushed
                    })
                })
                .collect();
            let mut seen = Vec::new();
            consume(&queue, 4, &mut seen);
            for p in producers {
                assert_eq!(p.join().unwrap(), 2);
            }
            assert_eq!(seen.len(), 4);
            for p in 0..2u32 {
                let mine: Vec<u8> = seen.iter().filter(|s| s.0 == p).map(|s| s.1).collect();
                assert_eq!(mine, vec![0, 1], "producer {p} out of order: {seen:?}");
            }
        });
    }

    #[test]
    fn loom_a_flush_target_covers_every_returned_push() {
        loom::model(|| {
            let queue = Arc::new(LineQueue::new(4));
            let other = {
                let queue = Arc::clone(&queue);
                thread::spawn(move || queue.push(entry(1, 1)).is_ok())
            };
            assert!(queue.push(entry(0, 0)).is_ok());
            // A flush starting now: its target must include our push, and reaching it means
            // our line was taken.
            let target = queue.tail();
            assert!(target >= 1);
            let consumer = {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    let mut seen = Vec::new();
                    consume(&queue, target, &mut seen);
                    seen
                })
            };
            let seen = consumer.join().unwrap();
            assert!(queue.completed() >= target);
            assert!(seen.contains(&(0, 0)), "flushed without our line: {seen:?}");
            assert!(other.join().unwrap());
        });
    }

    #[test]
    fn loom_a_parking_worker_never_misses_a_push() {
        loom::model(|| {
            let queue = Arc::new(LineQueue::new(2));
            let woken = Arc::new(AtomicBool::new(false));
            let producer = {
                let queue = Arc::clone(&queue);
                let woken = Arc::clone(&woken);
                thread::spawn(move || {
                    assert!(queue.push(entry(0, 0)).is_ok());
                    if queue.should_wake() {
                        woken.store(true, SeqCst);
                    }
                })
            };
            // The worker, with nothing taken yet, tries to park.
            let parked = !queue.park_worker();
            producer.join().unwrap();
            if parked {
                // Parked: the producer must have woken it.
                assert!(woken.load(SeqCst), "the worker parked and nobody woke it");
            }
        });
    }

    #[test]
    fn loom_a_push_racing_a_close_is_drained_by_someone() {
        loom::model(|| {
            let queue = Arc::new(LineQueue::new(2));
            let producer = {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    if queue.is_closing() {
                        return false; // would write synchronously
                    }
                    assert!(queue.push(entry(0, 0)).is_ok());
                    // Raced with the close: the producer drains itself.
                    queue.is_closing()
                })
            };
            queue.close();
            let target = queue.tail();
            let closer_took = target == 1;
            let producer_drains = producer.join().unwrap();
            // The closer drains up to its target; if its target missed the push, the producer
            // must have seen the close.
            let pushed = queue.tail() == 1;
            if pushed {
                assert!(
                    closer_took || producer_drains,
                    "a pushed line nobody drains"
                );
            }
        });
    }
}
