//! Checks the link step: EAL initialises from these raw bindings, the TSC is calibrated, and the
//! plugin PMDs (net_null, net_ring, net_af_packet) and the ring mempool driver register their devices and ops.
//! One test function: EAL can be initialised only once per process.

use std::ffi::{c_char, CString};

use dpdk_sys::*;

#[test]
fn eal_init_registers_virtual_devices() {
    let prefix = format!("cbsys{}", std::process::id());
    let args = [
        "dpdk-sys-test",
        "--no-huge",
        "-m",
        "128",
        "--no-pci",
        "--file-prefix",
        &prefix,
        "-l",
        "0",
        "--log-level",
        "lib.eal:error",
        "--vdev",
        "net_null0",
        "--vdev",
        "net_ring0",
        // AF_PACKET on loopback only: probing opens a packet socket on `lo`, nothing is sent.
        "--vdev",
        "net_af_packet0,iface=lo",
    ];
    let owned: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
    let mut argv: Vec<*mut c_char> = owned.iter().map(|a| a.as_ptr() as *mut c_char).collect();
    // SAFETY: argv holds valid NUL-terminated strings that outlive the call; EAL may permute
    // the pointer array, which we own.
    let rc = unsafe { rte_eal_init(argv.len() as i32, argv.as_mut_ptr()) };
    // SAFETY: plain thread-local read.
    assert!(
        rc >= 0,
        "rte_eal_init failed: rc {rc}, rte_errno {}",
        unsafe { _rte_errno() }
    );

    // SAFETY: EAL is initialised, these read global state.
    let (hz, shim_hz, tsc) = unsafe { (rte_get_tsc_hz(), _rte_get_tsc_hz(), _rte_rdtsc()) };
    assert!(hz > 0, "TSC frequency not calibrated");
    assert_eq!(hz, shim_hz);
    assert_ne!(tsc, 0);
    // SAFETY: the main thread is an EAL thread after rte_eal_init.
    assert_eq!(unsafe { _rte_lcore_id() }, 0);

    // SAFETY: EAL is initialised.
    let count = unsafe { rte_eth_dev_count_avail() };
    assert_eq!(
        count, 3,
        "expected net_null0, net_ring0 and net_af_packet0 to register"
    );
    for name in ["net_null0", "net_ring0", "net_af_packet0"] {
        let c = CString::new(name).unwrap();
        let mut port = u16::MAX;
        // SAFETY: c is a valid C string, port a valid out pointer.
        let rc = unsafe { rte_eth_dev_get_port_by_name(c.as_ptr(), &mut port) };
        assert_eq!(rc, 0, "{name} did not register (is the PMD plugin loaded?)");
        assert!(u32::from(port) < RTE_MAX_ETHPORTS);
    }

    // The ring mempool driver ("ring_mp_mc") is a plugin too: without it pool creation fails.
    let name = CString::new("sys_test_pool").unwrap();
    // SAFETY: valid name; EAL initialised.
    let pool = unsafe {
        rte_pktmbuf_pool_create(
            name.as_ptr(),
            255,
            0,
            0,
            RTE_MBUF_DEFAULT_BUF_SIZE as u16,
            0,
        )
    };
    assert!(
        !pool.is_null(),
        "pool create failed: rte_errno {}",
        unsafe { _rte_errno() }
    );
    // SAFETY: pool is valid; the mbuf is freed right after use.
    unsafe {
        let m = _rte_pktmbuf_alloc(pool);
        assert!(!m.is_null());
        assert_eq!(_rte_pktmbuf_data_len(m), 0);
        let p = _rte_pktmbuf_append(m, 4);
        assert!(!p.is_null());
        assert_eq!(_rte_pktmbuf_pkt_len(m), 4);
        assert_eq!(_rte_pktmbuf_mtod(m) as *mut c_char, p);
        _rte_pktmbuf_free(m);
        rte_mempool_free(pool);
    }

    // SAFETY: returns a static NUL-terminated path.
    let dir = unsafe { std::ffi::CStr::from_ptr(rte_eal_get_runtime_dir()) }
        .to_string_lossy()
        .into_owned();
    assert!(dir.ends_with(&prefix), "{dir}");
    // SAFETY: nothing DPDK-owned is alive any more.
    assert_eq!(unsafe { rte_eal_cleanup() }, 0);
    // EAL leaves its runtime directory behind; remove this test's.
    std::fs::remove_dir_all(&dir).unwrap();
}
