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

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use bytes::Bytes;

use super::sync::{lock, AtomicU64, Mutex};

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

/// The `tail` word: the next position in the low bits, and two flags that producers must see
/// in the same compare-and-swap that claims a position (so neither can be missed).
const IDLE: u64 = 1 << 63;
/// Set once the queue is closed: no position is claimed after it.
const CLOSED: u64 = 1 << 62;
const POSITION: u64 = CLOSED - 1;

/// Why [`LineQueue::push`] handed a line back.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The ring is full.
    Full(Entry),
    /// The queue is closed: the line is to be written synchronously.
    Closed(Entry),
}

/// The ring and the flush counters, shared by producers and the consumer role.
pub(crate) struct LineQueue {
    slots: Box<[Slot]>,
    mask: u64,
    /// The next position a producer claims (everything below it is accepted), with the
    /// [`IDLE`] and [`CLOSED`] flags.
    tail: AtomicU64,
    /// The next position the consumer takes (written only by the consumer-role holder).
    head: AtomicU64,
    /// Every line at a position below this is finished.
    completed: AtomicU64,
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
        }
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.mask + 1
    }

    /// Queues `entry`. `Ok(true)` means the worker had parked and must be woken (exactly one
    /// producer is told so); a full or closed queue hands the entry back.
    #[inline]
    pub(crate) fn push(&self, entry: Entry) -> Result<bool, Refused> {
        let mut word = self.tail.load(Relaxed);
        loop {
            if word & CLOSED != 0 {
                return Err(Refused::Closed(entry));
            }
            let pos = word & POSITION;
            let slot = &self.slots[(pos & self.mask) as usize];
            let stamp = slot.stamp.load(Acquire);
            if stamp == pos {
                // Claiming the position also clears IDLE: whoever clears it wakes the worker.
                match self
                    .tail
                    .compare_exchange_weak(word, pos + 1, AcqRel, Relaxed)
                {
                    Ok(_) => {
                        *lock(&slot.entry) = Some(entry);
                        slot.stamp.store(pos + 1, Release);
                        return Ok(word & IDLE != 0);
                    }
                    Err(now) => word = now,
                }
            } else if stamp < pos {
                // The slot still holds the line from one lap ago: the ring is full.
                return Err(Refused::Full(entry));
            } else {
                word = self.tail.load(Relaxed);
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
        } else if self.tail() > pos {
            Pop::InFlight
        } else {
            Pop::Empty
        }
    }

    /// Positions claimed so far: lines accepted into the ring. A flush waits for this.
    pub(crate) fn tail(&self) -> u64 {
        self.tail.load(Acquire) & POSITION
    }

    /// The consumer's position.
    pub(crate) fn head(&self) -> u64 {
        self.head.load(Acquire)
    }

    /// True when a line is queued or being queued.
    pub(crate) fn has_lines(&self) -> bool {
        self.tail() > self.head()
    }

    pub(crate) fn completed(&self) -> u64 {
        self.completed.load(Acquire)
    }

    /// Publishes the barrier (consumer-role holder only). Never moves backwards.
    pub(crate) fn set_completed(&self, position: u64) {
        self.completed.fetch_max(position, AcqRel);
    }

    /// The worker is about to park: sets IDLE in the tail word. Returns true if it must not
    /// park, because lines arrived (or the queue is closed) — then the flag is cleared again.
    pub(crate) fn park_worker(&self) -> bool {
        let word = self.tail.fetch_or(IDLE, AcqRel);
        if word & POSITION > self.head() || word & CLOSED != 0 {
            self.unpark_worker();
            return true;
        }
        false
    }

    /// Clears IDLE (the worker runs, so producers need not wake it).
    pub(crate) fn unpark_worker(&self) {
        if self.tail.load(Relaxed) & IDLE != 0 {
            self.tail.fetch_and(!IDLE, AcqRel);
        }
    }

    /// Closes the queue and returns the number of positions ever claimed: every push either
    /// got a position below it or is refused as [`Refused::Closed`].
    pub(crate) fn close(&self) -> u64 {
        self.tail.fetch_or(CLOSED, AcqRel) & POSITION
    }

    #[inline]
    pub(crate) fn is_closing(&self) -> bool {
        self.tail.load(Acquire) & CLOSED != 0
    }
}

impl std::fmt::Debug for LineQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineQueue")
            .field("capacity", &self.capacity())
            .field("tail", &self.tail())
            .field("head", &self.head.load(Relaxed))
            .field("completed", &self.completed.load(Relaxed))
            .finish()
    }
}

#[cfg(all(test, kakashi_loom))]
mod loom_tests {
    //! Model checks of the queue protocol: run with
    //! `RUSTFLAGS="--cfg kakashi_loom" cargo test --release --lib loom_` (scripts/loom.sh).
    use super::*;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::Arc;
    use loom::thread;
    use std::sync::atomic::Ordering::SeqCst;

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(f);
    }

    fn entry(sink: u32, n: u8) -> Entry {
        Entry {
            sink,
            line: Bytes::from(vec![n]),
        }
    }

    /// Takes lines until the consumer's position reaches `until`, then publishes the barrier.
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
        model(|| {
            let queue = Arc::new(LineQueue::new(4));
            let producers: Vec<_> = (0..2u32)
                .map(|p| {
                    let queue = Arc::clone(&queue);
                    thread::spawn(move || {
                        for n in 0..2u8 {
                            assert!(queue.push(entry(p, n)).is_ok());
                        }
                    })
                })
                .collect();
            let mut seen = Vec::new();
            consume(&queue, 4, &mut seen);
            for p in producers {
                p.join().unwrap();
            }
            assert_eq!(seen.len(), 4);
            for p in 0..2u32 {
                let mine: Vec<u8> = seen.iter().filter(|s| s.0 == p).map(|s| s.1).collect();
                assert_eq!(mine, vec![0, 1], "producer {p} out of order: {seen:?}");
            }
        });
    }

    #[test]
    fn loom_a_full_ring_refuses_and_recovers_after_a_pop() {
        model(|| {
            let queue = Arc::new(LineQueue::new(2));
            assert!(queue.push(entry(0, 0)).is_ok());
            assert!(queue.push(entry(0, 1)).is_ok());
            let consumer = {
                let queue = Arc::clone(&queue);
                thread::spawn(move || {
                    let mut seen = Vec::new();
                    consume(&queue, 1, &mut seen);
                    seen
                })
            };
            // Full until the consumer takes one; never a lost or doubled line.
            let third = match queue.push(entry(0, 2)) {
                Ok(_) => true,
                Err(Refused::Full(_)) => false,
                Err(Refused::Closed(_)) => panic!("not closed"),
            };
            assert_eq!(consumer.join().unwrap(), vec![(0, 0)]);
            if !third {
                assert!(queue.push(entry(0, 2)).is_ok());
            }
            assert_eq!(queue.tail(), 3);
        });
    }

    #[test]
    fn loom_a_flush_target_covers_every_returned_push() {
        model(|| {
            let queue = Arc::new(LineQueue::new(4));
            let other = {
                let queue = Arc::clone(&queue);
                thread::spawn(move || queue.push(entry(1, 1)).is_ok())
            };
            assert!(queue.push(entry(0, 0)).is_ok());
            // A flush starting now: its target includes our push, and reaching it means our
            // line was taken.
            let target = queue.tail();
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
        model(|| {
            let queue = Arc::new(LineQueue::new(2));
            let woken = Arc::new(AtomicBool::new(false));
            let producer = {
                let queue = Arc::clone(&queue);
                let woken = Arc::clone(&woken);
                thread::spawn(move || {
                    if queue.push(entry(0, 0)).unwrap_or(false) {
                        woken.store(true, SeqCst);
                    }
                })
            };
            // The worker, with nothing taken, tries to park.
            let parked = !queue.park_worker();
            producer.join().unwrap();
            if parked {
                assert!(woken.load(SeqCst), "the worker parked and nobody woke it");
            }
        });
    }

    #[test]
    fn loom_a_push_racing_a_close_is_counted_by_the_close_or_refused() {
        model(|| {
            let queue = Arc::new(LineQueue::new(2));
            let producer = {
                let queue = Arc::clone(&queue);
                thread::spawn(move || match queue.push(entry(0, 0)) {
                    Ok(_) => true,
                    Err(Refused::Closed(_)) => false,
                    Err(Refused::Full(_)) => panic!("not full"),
                })
            };
            let target = queue.close();
            let pushed = producer.join().unwrap();
            // A line in the ring is always below the closing drain's target.
            assert_eq!(pushed, target == 1);
            assert_eq!(queue.tail(), target);
        });
    }
}
