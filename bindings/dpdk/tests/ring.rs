//! The mbuf handoff ring (`mbuf_ring`) on EAL without devices or hugepages. EAL can be
//! initialised only once per process, so this file has a single `#[test]`.

use std::time::{Duration, Instant};

use callbridge_dpdk::lcore::SocketId;
use callbridge_dpdk::{
    mbuf_ring, Burst, DpdkError, Eal, EalArgs, Mbuf, Mempool, RingConsumer, RingProducer,
};

/// An mbuf whose data is `(producer, seq)`, 8 bytes.
fn tagged(pool: &Mempool, producer: u32, seq: u32) -> Option<Mbuf> {
    let mut m = pool.alloc()?;
    let d = m.append(8).expect("tailroom");
    d[..4].copy_from_slice(&producer.to_be_bytes());
    d[4..].copy_from_slice(&seq.to_be_bytes());
    Some(m)
}

fn tag(m: &Mbuf) -> (u32, u32) {
    let d = m.data();
    (
        u32::from_be_bytes(d[..4].try_into().unwrap()),
        u32::from_be_bytes(d[4..8].try_into().unwrap()),
    )
}

fn seqs<const N: usize>(b: &Burst<N>) -> Vec<u32> {
    b.iter().map(|m| tag(m).1).collect()
}

#[test]
fn mbuf_ring_scenarios() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<RingProducer>();
    send::<RingConsumer>();

    let args = EalArgs::for_tests().build();
    let eal = Eal::init(&args).expect("EAL init with --no-huge and no device");
    let pool = Mempool::new(
        "cb_ring_pool",
        2047,
        32,
        Mempool::DEFAULT_DATA_ROOM,
        SocketId::ANY,
    )
    .expect("mempool");
    let start = pool.available();
    assert_eq!(start, 2047);

    bad_arguments();
    fills_keeps_order(&pool);
    concurrent_producers(&pool);
    leftovers_are_freed(&pool, start);

    assert_eq!(pool.available(), start, "every mbuf is back in the pool");
    assert_eq!(pool.in_use(), 0);
    let runtime_dir = eal.runtime_dir();
    drop(pool);
    drop(eal);
    assert!(!Eal::is_initialized(), "the rings released EAL");
    std::fs::remove_dir_all(&runtime_dir).expect("remove this test's EAL runtime dir");
}

fn bad_arguments() {
    for size in [0, 1, 6, 100] {
        assert!(
            matches!(
                mbuf_ring("cb_bad", size, SocketId::ANY),
                Err(DpdkError::InvalidInput {
                    what: "ring size",
                    ..
                })
            ),
            "size {size}"
        );
    }
    for name in ["", "a_ring_name_longer_than_28_by", "nul\0"] {
        assert!(
            matches!(
                mbuf_ring(name, 8, SocketId::ANY),
                Err(DpdkError::InvalidInput {
                    what: "ring name",
                    ..
                })
            ),
            "name {name:?}"
        );
    }
    // 28 bytes is the longest name DPDK accepts.
    let longest = "a_ring_name_of_28_bytes_long";
    assert_eq!(longest.len(), 28);
    let (p, c) = mbuf_ring(longest, 8, SocketId::ANY).expect("28-byte name");
    // Names are unique while the ring lives …
    assert!(matches!(
        mbuf_ring(longest, 8, SocketId::ANY),
        Err(DpdkError::AlreadyExists {
            call: "rte_ring_create",
            ..
        })
    ));
    drop(p);
    assert!(matches!(
        mbuf_ring(longest, 8, SocketId::ANY),
        Err(DpdkError::AlreadyExists { .. })
    ));
    // … and free again once the last handle is gone (rte_ring_free ran).
    drop(c);
    let again = mbuf_ring(longest, 8, SocketId::ANY).expect("name reusable after free");
    drop(again);
}

fn fills_keeps_order(pool: &Mempool) {
    let (producer, mut consumer) = mbuf_ring("cb_ring_order", 8, SocketId::ANY).unwrap();
    assert_eq!(producer.capacity(), 7);
    assert_eq!(consumer.capacity(), 7);
    assert!(consumer.is_empty() && producer.is_empty());

    let mut burst = Burst::<16>::new();
    for s in 0..10 {
        burst.push(tagged(pool, 0, s).unwrap()).unwrap();
    }
    // Size 8 holds 7: the first 7 move into the ring, the last 3 stay, in order, at the front.
    assert_eq!(producer.enqueue_burst(&mut burst), 7);
    assert_eq!(seqs(&burst), [7, 8, 9]);
    assert_eq!(consumer.len(), 7);
    assert_eq!(producer.len(), 7);
    assert_eq!(pool.in_use(), 10, "moved, not copied or freed");
    // Full: nothing moves.
    assert_eq!(producer.enqueue_burst(&mut burst), 0);
    assert_eq!(seqs(&burst), [7, 8, 9]);
    // An empty burst enqueues nothing.
    assert_eq!(producer.enqueue_burst(&mut Burst::<4>::new()), 0);

    // Dequeue fills the free room only, oldest first.
    let mut out = Burst::<4>::new();
    out.push(tagged(pool, 9, 100).unwrap()).unwrap();
    assert_eq!(consumer.dequeue_burst(&mut out), 3);
    assert_eq!(seqs(&out), [100, 0, 1, 2]);
    assert_eq!(consumer.dequeue_burst(&mut out), 0, "no room");
    out.clear();
    assert_eq!(consumer.dequeue_burst(&mut out), 4);
    assert_eq!(seqs(&out), [3, 4, 5, 6]);
    assert!(consumer.is_empty());
    out.clear();

    // The rest follows in order.
    assert_eq!(producer.enqueue_burst(&mut burst), 3);
    assert!(burst.is_empty());
    assert_eq!(consumer.dequeue_burst(&mut out), 3);
    assert_eq!(seqs(&out), [7, 8, 9]);
    assert_eq!(consumer.dequeue_burst(&mut out), 0, "empty ring");
    assert!(pool.owns(&out.as_slice()[0]));
    drop(out);
    assert_eq!(pool.in_use(), 0);
}

/// Two producer threads (cloned producers) enqueue concurrently with a consumer thread; every
/// mbuf arrives exactly once, each producer's in its order.
fn concurrent_producers(pool: &Mempool) {
    const PER_PRODUCER: u32 = 5000;
    const PRODUCERS: u32 = 2;
    let (producer, mut consumer) = mbuf_ring("cb_ring_mp", 64, SocketId::ANY).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);

    let consumer_thread = std::thread::spawn(move || {
        let mut next = [0u32; PRODUCERS as usize];
        let mut burst = Burst::<32>::new();
        let mut got = 0;
        while got < PER_PRODUCER * PRODUCERS && Instant::now() < deadline {
            if consumer.dequeue_burst(&mut burst) == 0 {
                std::thread::yield_now();
                continue;
            }
            for m in burst.iter() {
                let (p, s) = tag(m);
                assert_eq!(s, next[p as usize], "producer {p} out of order");
                next[p as usize] += 1;
                got += 1;
            }
            burst.clear();
        }
        (got, next, consumer)
    });

    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let producer = producer.clone();
            let pool = pool.clone();
            std::thread::spawn(move || {
                let mut burst = Burst::<32>::new();
                let mut seq = 0;
                while (seq < PER_PRODUCER || !burst.is_empty()) && Instant::now() < deadline {
                    while seq < PER_PRODUCER && !burst.is_full() {
                        // The pool may run dry while the consumer lags: send what we have.
                        let Some(m) = tagged(&pool, p, seq) else {
                            break;
                        };
                        burst.push(m).unwrap();
                        seq += 1;
                    }
                    if producer.enqueue_burst(&mut burst) == 0 {
                        std::thread::yield_now();
                    }
                }
                seq
            })
        })
        .collect();
    drop(producer);
    for t in producers {
        assert_eq!(t.join().unwrap(), PER_PRODUCER, "producer finished in time");
    }
    let (got, next, consumer) = consumer_thread.join().unwrap();
    assert_eq!(
        got,
        PER_PRODUCER * PRODUCERS,
        "consumer got everything in time"
    );
    assert_eq!(next, [PER_PRODUCER; PRODUCERS as usize]);
    assert!(consumer.is_empty());
    drop(consumer);
    assert_eq!(pool.in_use(), 0);
}

/// Mbufs still in the ring go back to the pool when the last handle drops, whichever it is.
fn leftovers_are_freed(pool: &Mempool, start: u32) {
    let (producer, consumer) = mbuf_ring("cb_ring_left", 16, SocketId::ANY).unwrap();
    let mut burst = Burst::<16>::new();
    for s in 0..10 {
        burst.push(tagged(pool, 0, s).unwrap()).unwrap();
    }
    assert_eq!(producer.enqueue_burst(&mut burst), 10);
    assert_eq!(pool.available(), start - 10);
    // The consumer goes first; the ring lives on with the producers.
    drop(consumer);
    let second = producer.clone();
    for s in 10..12 {
        burst.push(tagged(pool, 0, s).unwrap()).unwrap();
    }
    assert_eq!(second.enqueue_burst(&mut burst), 2);
    assert_eq!(second.len(), 12);
    drop(producer);
    assert_eq!(pool.available(), start - 12, "still held by the ring");
    drop(second);
    assert_eq!(pool.available(), start, "freed with the ring");
}
