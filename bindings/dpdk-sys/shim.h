/*
 * callbridge's re-exports of DPDK's `static inline` functions and function-like macros.
 *
 * bindgen cannot generate bindings for `static inline` functions (they have no symbol in any
 * library), so each one we need is wrapped here under a `_rte_` prefix, compiled by `cc` with
 * pkg-config's cflags, and linked into the crate. Keep the list short: add a wrapper only when
 * the safe layer (`bindings/dpdk`) needs it.
 */
#ifndef CALLBRIDGE_DPDK_SHIM_H
#define CALLBRIDGE_DPDK_SHIM_H

#include <stdint.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_ethdev.h>

/**
 * Capability and offload bits that DPDK defines with the function-like macro RTE_BIT64, which
 * bindgen cannot evaluate. All are below 2^31, so an enum holds them.
 */
enum _rte_shim_bits {
	/** rte_eth_dev_info.tx_offload_capa / txmode.offloads: IPv4 header checksum. */
	_RTE_ETH_TX_OFFLOAD_IPV4_CKSUM = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM,
	/** rte_eth_dev_info.tx_offload_capa / txmode.offloads: UDP checksum. */
	_RTE_ETH_TX_OFFLOAD_UDP_CKSUM = RTE_ETH_TX_OFFLOAD_UDP_CKSUM,
	/** txmode.offloads: all mbufs of a queue come from one pool and have refcnt 1. */
	_RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE = RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE,
	/** txmode.offloads: multi-segment packets. */
	_RTE_ETH_TX_OFFLOAD_MULTI_SEGS = RTE_ETH_TX_OFFLOAD_MULTI_SEGS,
	/** rte_eth_dev_info.rx_offload_capa / rxmode.offloads: IPv4 header checksum check. */
	_RTE_ETH_RX_OFFLOAD_IPV4_CKSUM = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM,
	/** rte_eth_dev_info.rx_offload_capa / rxmode.offloads: UDP checksum check. */
	_RTE_ETH_RX_OFFLOAD_UDP_CKSUM = RTE_ETH_RX_OFFLOAD_UDP_CKSUM,
	/** rte_eth_dev_info.flow_type_rss_offloads / rss_conf.rss_hf: hash on IPv4/IPv6 addresses. */
	_RTE_ETH_RSS_IP = RTE_ETH_RSS_IP,
	/** rte_eth_dev_info.flow_type_rss_offloads / rss_conf.rss_hf: hash on UDP ports too. */
	_RTE_ETH_RSS_UDP = RTE_ETH_RSS_UDP,
	/** rte_ring_create flags: single-consumer dequeue (the producers stay multi-producer). */
	_RTE_RING_F_SC_DEQ = RING_F_SC_DEQ,
};

/** rte_eth_rx_burst: receive up to nb_pkts mbufs from an RX queue into rx_pkts. */
uint16_t _rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts, uint16_t nb_pkts);

/** rte_eth_tx_burst: hand up to nb_pkts mbufs to a TX queue; returns how many the driver took. */
uint16_t _rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

/** rte_pktmbuf_alloc: allocate one packet mbuf from a pktmbuf pool (NULL when empty). */
struct rte_mbuf *_rte_pktmbuf_alloc(struct rte_mempool *mp);

/** rte_pktmbuf_alloc_bulk: allocate count mbufs, all or nothing (0 on success, negative errno). */
int _rte_pktmbuf_alloc_bulk(struct rte_mempool *pool, struct rte_mbuf **mbufs, unsigned int count);

/** rte_pktmbuf_free: free a packet mbuf (and its segments) back to its pool; NULL is a no-op. */
void _rte_pktmbuf_free(struct rte_mbuf *m);

/** rte_pktmbuf_mtod: pointer to the first byte of packet data in the first segment. */
void *_rte_pktmbuf_mtod(struct rte_mbuf *m);

/** rte_pktmbuf_data_len: bytes of data in the first segment. */
uint16_t _rte_pktmbuf_data_len(const struct rte_mbuf *m);

/** rte_pktmbuf_pkt_len: bytes of data in the whole packet (all segments). */
uint32_t _rte_pktmbuf_pkt_len(const struct rte_mbuf *m);

/** Set the first segment's data_len (no bounds check: the caller checks). */
void _rte_pktmbuf_set_data_len(struct rte_mbuf *m, uint16_t len);

/** Set the packet's pkt_len (no bounds check: the caller checks). */
void _rte_pktmbuf_set_pkt_len(struct rte_mbuf *m, uint32_t len);

/** Number of segments in the packet. */
uint16_t _rte_pktmbuf_nb_segs(const struct rte_mbuf *m);

/** rte_pktmbuf_headroom: free bytes before the data in the first segment. */
uint16_t _rte_pktmbuf_headroom(const struct rte_mbuf *m);

/** rte_pktmbuf_tailroom: free bytes after the data in the last segment. */
uint16_t _rte_pktmbuf_tailroom(const struct rte_mbuf *m);

/** rte_pktmbuf_append: grow the packet by len bytes at the tail; pointer to them, or NULL. */
char *_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);

/** rte_pktmbuf_prepend: grow the packet by len bytes at the head; pointer to them, or NULL. */
char *_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);

/** rte_pktmbuf_adj: remove len bytes from the head; new data start, or NULL if too long. */
char *_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);

/** rte_pktmbuf_trim: remove len bytes from the tail; 0 on success, -1 if too long. */
int _rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);

/** rte_pktmbuf_reset: reset an mbuf's fields (lengths, offsets, flags) to their allocation state. */
void _rte_pktmbuf_reset(struct rte_mbuf *m);

/** Read the mbuf's ol_flags (RTE_MBUF_F_*). */
uint64_t _rte_mbuf_ol_flags(const struct rte_mbuf *m);

/** Set the mbuf's ol_flags (RTE_MBUF_F_*). */
void _rte_mbuf_set_ol_flags(struct rte_mbuf *m, uint64_t flags);

/** Set the mbuf's l2_len and l3_len (header lengths used by checksum offload). */
void _rte_mbuf_set_l2_l3_len(struct rte_mbuf *m, uint16_t l2_len, uint16_t l3_len);

/** Read the mbuf's l2_len. */
uint16_t _rte_mbuf_l2_len(const struct rte_mbuf *m);

/** Read the mbuf's l3_len. */
uint16_t _rte_mbuf_l3_len(const struct rte_mbuf *m);

/** Request IPv4 header and/or UDP checksum offload: sets TX_IPV4, TX_IP_CKSUM, TX_UDP_CKSUM, l2_len, l3_len. */
void _rte_mbuf_set_tx_cksum_offload(struct rte_mbuf *m, int ipv4_cksum, int udp_cksum, uint16_t l2_len, uint16_t l3_len);

/** The mempool the mbuf belongs to. */
struct rte_mempool *_rte_mbuf_pool(const struct rte_mbuf *m);

/** rte_lcore_id: the calling thread's lcore id (LCORE_ID_ANY on unregistered threads). */
unsigned int _rte_lcore_id(void);

/** rte_errno: the calling thread's last DPDK error number. */
int _rte_errno(void);

/** Set rte_errno for the calling thread (tests and error paths). */
void _rte_set_errno(int value);

/** rte_rdtsc: read the CPU time-stamp counter. */
uint64_t _rte_rdtsc(void);

/** rte_get_tsc_hz: TSC frequency in Hz (exported by librte_eal; wrapped for symmetry). */
uint64_t _rte_get_tsc_hz(void);

/** rte_ring_enqueue_burst: enqueue up to n pointers; returns how many were enqueued. */
unsigned int _rte_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table, unsigned int n, unsigned int *free_space);

/** rte_ring_dequeue_burst: dequeue up to n pointers; returns how many were dequeued. */
unsigned int _rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned int n, unsigned int *available);

/** rte_ring_count: how many objects the ring holds (a racy snapshot while others enqueue). */
unsigned int _rte_ring_count(const struct rte_ring *r);

/** rte_prefetch0: prefetch the cache line at p into all cache levels. */
void _rte_prefetch0(const void *p);

#endif /* CALLBRIDGE_DPDK_SHIM_H */
