/* Definitions of the wrappers declared (and documented) in shim.h. */
#include <rte_config.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_prefetch.h>
#include <rte_ethdev.h>

#include "shim.h"

uint16_t _rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t _rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *_rte_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int _rte_pktmbuf_alloc_bulk(struct rte_mempool *pool, struct rte_mbuf **mbufs, unsigned int count)
{
	return rte_pktmbuf_alloc_bulk(pool, mbufs, count);
}

void _rte_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

void *_rte_pktmbuf_mtod(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod(m, void *);
}

uint16_t _rte_pktmbuf_data_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_data_len(m);
}

uint32_t _rte_pktmbuf_pkt_len(const struct rte_mbuf *m)
{
	return rte_pktmbuf_pkt_len(m);
}

void _rte_pktmbuf_set_data_len(struct rte_mbuf *m, uint16_t len)
{
	m->data_len = len;
}

void _rte_pktmbuf_set_pkt_len(struct rte_mbuf *m, uint32_t len)
{
	m->pkt_len = len;
}

uint16_t _rte_pktmbuf_nb_segs(const struct rte_mbuf *m)
{
	return m->nb_segs;
}

uint16_t _rte_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t _rte_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

char *_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

char *_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

int _rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

void _rte_pktmbuf_reset(struct rte_mbuf *m)
{
	rte_pktmbuf_reset(m);
}

uint64_t _rte_mbuf_ol_flags(const struct rte_mbuf *m)
{
	return m->ol_flags;
}

void _rte_mbuf_set_ol_flags(struct rte_mbuf *m, uint64_t flags)
{
	m->ol_flags = flags;
}

void _rte_mbuf_set_l2_l3_len(struct rte_mbuf *m, uint16_t l2_len, uint16_t l3_len)
{
	m->l2_len = l2_len;
	m->l3_len = l3_len;
}

uint16_t _rte_mbuf_l2_len(const struct rte_mbuf *m)
{
	return m->l2_len;
}

uint16_t _rte_mbuf_l3_len(const struct rte_mbuf *m)
{
	return m->l3_len;
}

void _rte_mbuf_set_tx_cksum_offload(struct rte_mbuf *m, int ipv4_cksum, int udp_cksum, uint16_t l2_len, uint16_t l3_len)
{
	uint64_t flags = m->ol_flags & ~(RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_L4_MASK);

	if (ipv4_cksum || udp_cksum)
		flags |= RTE_MBUF_F_TX_IPV4;
	if (ipv4_cksum)
		flags |= RTE_MBUF_F_TX_IP_CKSUM;
	if (udp_cksum)
		flags |= RTE_MBUF_F_TX_UDP_CKSUM;
	m->ol_flags = flags;
	m->l2_len = l2_len;
	m->l3_len = l3_len;
}

struct rte_mempool *_rte_mbuf_pool(const struct rte_mbuf *m)
{
	return m->pool;
}

unsigned int _rte_lcore_id(void)
{
	return rte_lcore_id();
}

int _rte_errno(void)
{
	return rte_errno;
}

void _rte_set_errno(int value)
{
	rte_errno = value;
}

uint64_t _rte_rdtsc(void)
{
	return rte_rdtsc();
}

uint64_t _rte_get_tsc_hz(void)
{
	return rte_get_tsc_hz();
}

unsigned int _rte_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table, unsigned int n, unsigned int *free_space)
{
	return rte_ring_enqueue_burst(r, obj_table, n, free_space);
}

unsigned int _rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned int n, unsigned int *available)
{
	return rte_ring_dequeue_burst(r, obj_table, n, available);
}

unsigned int _rte_ring_count(const struct rte_ring *r)
{
	return rte_ring_count(r);
}

void _rte_prefetch0(const void *p)
{
	rte_prefetch0(p);
}
