/*
 * The DPDK headers bindgen reads. `rte_config.h` comes in through
 * `pkg-config --cflags-only-other libdpdk` (`-include rte_config.h`).
 */
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>
#include <rte_arp.h>
#include <rte_icmp.h>
#include <rte_bus_vdev.h>
#include <rte_flow.h>
#include <rte_thread.h>

#include "shim.h"
