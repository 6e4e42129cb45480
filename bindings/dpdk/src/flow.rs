//! NIC flow steering with `rte_flow`: [`UdpSteer`] describes "IPv4/UDP to this address whose
//! destination port matches (value, mask) goes to RX queue n"; [`Port::flow_validate`] asks the
//! device whether it would accept it, [`Port::flow_create`] installs it as a [`FlowRule`], which
//! removes it again on drop.
//!
//! The rule is `ingress, group 0, priority 0`, pattern `ETH / IPV4 / UDP / END`, actions
//! `QUEUE / END`:
//!
//! | item | spec | mask |
//! |---|---|---|
//! | ETH | none (any frame) | none |
//! | IPV4 | `dst_addr = dst_ip`, `next_proto_id = 17` | `dst_addr = 255.255.255.255`, `next_proto_id = 0xff` |
//! | UDP | `dst_port = port` | `dst_port = mask` |
//!
//! All header fields are in network byte order, as in the packet.
//!
//! What drivers accept differs. Found on TAP (`net_tap`, DPDK 22.11):
//! - `flow_validate` only parses: it accepts the rule before and after [`Port::start`], and
//!   refuses a queue the port does not have (ERANGE, "queue index out of range"), but it does
//!   **not** check TAP's port-mask limit. A UDP port mask other than 0 or 0xffff is refused
//!   only by `flow_create` (ENOTSUP, "item not supported"; the PMD's comment: "TC does not
//!   support UDP port masking"). So on TAP a validated masked rule can still fail to be
//!   created: treat a `flow_create` refusal like a validation refusal.
//! - `flow_create` installs a tc flower filter with a skbedit action under a multiq qdisc on
//!   the kernel interface and needs the kernel's `sch_multiq`, `cls_flower` and `act_skbedit`.
//!   Without them the PMD disables rte_flow at probe time ("failed to create multiq qdisc")
//!   and every `flow_create` fails (EEXIST, "overlapping rules or Kernel too old for flower
//!   support"); validation still succeeds. TAP's create does not look at whether the port
//!   is started (from its source: not observable on a kernel without those modules); most
//!   hardware PMDs want the port started first, so create rules after `start`.
//! - Several rules on the same fields with different values coexist; the same match twice is
//!   refused ("overlapping rules").
//!
//! Lifetimes: a [`FlowRule`] keeps its port's state (and so EAL) alive, so the rule is always
//! destroyed before the port is stopped by the last drop and before EAL cleans up. Drop every
//! `FlowRule` before closing or reconfiguring the port by other means.

use std::ffi::c_void;
use std::fmt;
use std::net::Ipv4Addr;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use dpdk_sys as sys;

use crate::error::{c_str_to_string, strerror, DpdkError};
use crate::port::{Port, PortInner};

/// IP protocol number of UDP.
const IPPROTO_UDP: u8 = 17;

/// Steer IPv4/UDP datagrams to `dst_ip` whose destination port matches (`port & mask` ==
/// `value & mask`) to RX queue `queue`. Ingress, group 0, priority 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpSteer {
    /// The IPv4 destination address (ours), matched exactly.
    pub dst_ip: Ipv4Addr,
    /// The UDP destination port value.
    pub port: u16,
    /// Which bits of the destination port must equal `port`'s (0xffff: exactly `port`).
    pub mask: u16,
    /// The RX queue the matching datagrams go to.
    pub queue: u16,
}

/// The item specs and masks of one rule, in network byte order, which the `rte_flow_item`
/// pattern points into. Built without FFI so it can be unit tested.
#[derive(Clone, Copy)]
struct FlowSpec {
    attr: sys::rte_flow_attr,
    ipv4_spec: sys::rte_flow_item_ipv4,
    ipv4_mask: sys::rte_flow_item_ipv4,
    udp_spec: sys::rte_flow_item_udp,
    udp_mask: sys::rte_flow_item_udp,
    queue: sys::rte_flow_action_queue,
}

/// An IPv4 header with only `dst_addr` and `next_proto_id` set (host values converted to
/// network byte order).
fn ipv4_item(dst_addr: [u8; 4], next_proto_id: u8) -> sys::rte_flow_item_ipv4 {
    sys::rte_flow_item_ipv4 {
        hdr: sys::rte_ipv4_hdr {
            __bindgen_anon_1: sys::rte_ipv4_hdr__bindgen_ty_1 { version_ihl: 0 },
            type_of_service: 0,
            total_length: 0,
            packet_id: 0,
            fragment_offset: 0,
            time_to_live: 0,
            next_proto_id,
            hdr_checksum: 0,
            src_addr: 0,
            // rte_be32_t: the bytes in memory are the address's octets in order.
            dst_addr: u32::from_ne_bytes(dst_addr),
        },
    }
}

/// A UDP header with only `dst_port` set (converted to network byte order).
fn udp_item(dst_port: u16) -> sys::rte_flow_item_udp {
    sys::rte_flow_item_udp {
        hdr: sys::rte_udp_hdr {
            dst_port: dst_port.to_be(),
            ..Default::default()
        },
    }
}

impl FlowSpec {
    fn new(rule: &UdpSteer) -> Self {
        let mut attr = sys::rte_flow_attr {
            group: 0,
            priority: 0,
            ..Default::default()
        };
        attr.set_ingress(1);
        Self {
            attr,
            ipv4_spec: ipv4_item(rule.dst_ip.octets(), IPPROTO_UDP),
            ipv4_mask: ipv4_item([0xff; 4], 0xff),
            udp_spec: udp_item(rule.port),
            udp_mask: udp_item(rule.mask),
            queue: sys::rte_flow_action_queue { index: rule.queue },
        }
    }

    /// The pattern `ETH / IPV4 / UDP / END`, pointing into `self` (valid while `self` is
    /// neither moved nor dropped).
    fn pattern(&self) -> [sys::rte_flow_item; 4] {
        let item = |type_, spec: *const c_void, mask: *const c_void| sys::rte_flow_item {
            type_,
            spec,
            last: ptr::null(),
            mask,
        };
        let none = ptr::null();
        [
            item(sys::RTE_FLOW_ITEM_TYPE_ETH, none, none),
            item(
                sys::RTE_FLOW_ITEM_TYPE_IPV4,
                ptr::from_ref(&self.ipv4_spec).cast(),
                ptr::from_ref(&self.ipv4_mask).cast(),
            ),
            item(
                sys::RTE_FLOW_ITEM_TYPE_UDP,
                ptr::from_ref(&self.udp_spec).cast(),
                ptr::from_ref(&self.udp_mask).cast(),
            ),
            item(sys::RTE_FLOW_ITEM_TYPE_END, none, none),
        ]
    }

    /// The actions `QUEUE / END`, pointing into `self`.
    fn actions(&self) -> [sys::rte_flow_action; 2] {
        [
            sys::rte_flow_action {
                type_: sys::RTE_FLOW_ACTION_TYPE_QUEUE,
                conf: ptr::from_ref(&self.queue).cast(),
            },
            sys::rte_flow_action {
                type_: sys::RTE_FLOW_ACTION_TYPE_END,
                conf: ptr::null(),
            },
        ]
    }
}

/// A zeroed `rte_flow_error` for the PMD to fill in.
fn empty_error() -> sys::rte_flow_error {
    sys::rte_flow_error {
        type_: sys::RTE_FLOW_ERROR_TYPE_NONE,
        cause: ptr::null(),
        message: ptr::null(),
    }
}

/// The [`DpdkError::Flow`] for a failed `call` with (positive or negative) `errno`.
fn flow_error(call: &'static str, errno: i32, error: &sys::rte_flow_error) -> DpdkError {
    let errno = errno.abs();
    // SAFETY: the PMD sets `message` to NULL or a NUL-terminated string that lives at least
    // until the next rte_flow call (usually a literal); we copy it at once.
    let message = unsafe { c_str_to_string(error.message) };
    let message = if message.is_empty() {
        strerror(errno)
    } else {
        message
    };
    DpdkError::Flow {
        call,
        errno,
        message,
    }
}

impl Port {
    /// `rte_flow_validate`: Ok if the device would accept the rule. Checks only; installs
    /// nothing. Callable before and after [`Port::start`]. How thorough the check is depends
    /// on the PMD: TAP's does not check its port-mask limit (see the module docs), so
    /// `flow_create` can still refuse a validated rule.
    ///
    /// # Errors
    /// [`DpdkError::Flow`] with the PMD's reason (e.g. ERANGE for a queue the port lacks on
    /// TAP, `ENOSYS` for a driver without rte_flow).
    pub fn flow_validate(&self, rule: &UdpSteer) -> Result<(), DpdkError> {
        let spec = FlowSpec::new(rule);
        let (pattern, actions) = (spec.pattern(), spec.actions());
        let mut error = empty_error();
        // SAFETY: the port is configured (we hold it); attr, pattern and actions are valid,
        // END-terminated and point into `spec`, which outlives the call; error is a valid out
        // pointer. ethdev serialises flow ops on PMDs that are not thread-safe.
        let rc = unsafe {
            sys::rte_flow_validate(
                self.id().0,
                &spec.attr,
                pattern.as_ptr(),
                actions.as_ptr(),
                &mut error,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(flow_error("rte_flow_validate", rc, &error))
        }
    }

    /// `rte_flow_create`. The rule is destroyed when the returned [`FlowRule`] drops. Create
    /// rules after [`Port::start`] (hardware PMDs need it; TAP accepts either).
    ///
    /// # Errors
    /// [`DpdkError::Flow`] with the PMD's reason (on TAP: ENOTSUP "item not supported" for a
    /// port mask other than 0xffff, EEXIST for an overlapping rule or a kernel without tc
    /// flower support).
    pub fn flow_create(&self, rule: &UdpSteer) -> Result<FlowRule, DpdkError> {
        let spec = FlowSpec::new(rule);
        let (pattern, actions) = (spec.pattern(), spec.actions());
        let mut error = empty_error();
        // SAFETY: as in flow_validate. The PMD copies what it needs from the items; nothing
        // keeps pointing into `spec` after the call.
        let raw = unsafe {
            sys::rte_flow_create(
                self.id().0,
                &spec.attr,
                pattern.as_ptr(),
                actions.as_ptr(),
                &mut error,
            )
        };
        match NonNull::new(raw) {
            Some(raw) => Ok(FlowRule {
                raw,
                rule: *rule,
                port: Arc::clone(self.inner()),
            }),
            None => Err(flow_error(
                "rte_flow_create",
                crate::error::rte_errno(),
                &error,
            )),
        }
    }
}

/// An installed rule; dropping it calls `rte_flow_destroy` (errors ignored). `Send + Sync`.
///
/// It keeps its port's state alive, so the port is not stopped by the last [`Port`] drop (nor
/// EAL cleaned up) while the rule exists. Drop it before closing the port.
pub struct FlowRule {
    raw: NonNull<sys::rte_flow>,
    rule: UdpSteer,
    port: Arc<PortInner>,
}

// SAFETY: the handle is an opaque token that only `rte_flow_destroy` (in Drop) uses; ethdev
// takes the port's flow mutex around flow ops of PMDs that are not thread-safe, so destroying
// from any thread is fine.
unsafe impl Send for FlowRule {}
// SAFETY: `&FlowRule` gives access to the plain `UdpSteer` copy only, never to the handle.
unsafe impl Sync for FlowRule {}

impl FlowRule {
    /// The rule as requested.
    #[must_use]
    pub fn rule(&self) -> &UdpSteer {
        &self.rule
    }
}

impl fmt::Debug for FlowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowRule")
            .field("port", &self.port.id())
            .field("rule", &self.rule)
            .finish()
    }
}

impl Drop for FlowRule {
    fn drop(&mut self) {
        let mut error = empty_error();
        // SAFETY: raw came from rte_flow_create on this port, which is still configured (we
        // hold its state), and is destroyed exactly once, here.
        let _ = unsafe { sys::rte_flow_destroy(self.port.id(), self.raw.as_ptr(), &mut error) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of a packed struct as they lie in memory.
    fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
        let p = ptr::from_ref(v).cast::<u8>();
        // SAFETY: T is a plain-data bindgen struct without padding (packed); reading its
        // size_of bytes is in bounds.
        unsafe { std::slice::from_raw_parts(p, std::mem::size_of::<T>()) }.to_vec()
    }

    fn rule() -> UdpSteer {
        UdpSteer {
            dst_ip: Ipv4Addr::new(198, 18, 9, 2),
            port: 41000,
            mask: 0xfffe,
            queue: 3,
        }
    }

    #[test]
    fn items_are_in_network_byte_order() {
        let s = FlowSpec::new(&rule());
        // IPv4 header: protocol at byte 9, destination address at 16..20.
        let ip = bytes_of(&s.ipv4_spec);
        assert_eq!(ip.len(), 20);
        assert_eq!(ip[9], 17);
        assert_eq!(&ip[16..20], &[198, 18, 9, 2]);
        assert!(ip[..9].iter().chain(&ip[10..16]).all(|&b| b == 0));
        let ip_mask = bytes_of(&s.ipv4_mask);
        assert_eq!(ip_mask[9], 0xff);
        assert_eq!(&ip_mask[16..20], &[0xff; 4]);
        assert!(ip_mask[..9].iter().chain(&ip_mask[10..16]).all(|&b| b == 0));
        // UDP header: destination port at 2..4, big-endian (41000 = 0xa028).
        assert_eq!(bytes_of(&s.udp_spec), [0, 0, 0xa0, 0x28, 0, 0, 0, 0]);
        assert_eq!(bytes_of(&s.udp_mask), [0, 0, 0xff, 0xfe, 0, 0, 0, 0]);
        assert_eq!(s.queue.index, 3);
    }

    #[test]
    fn attr_is_ingress_group_0_priority_0() {
        let s = FlowSpec::new(&rule());
        assert_eq!((s.attr.group, s.attr.priority), (0, 0));
        assert_eq!(s.attr.ingress(), 1);
        assert_eq!(s.attr.egress(), 0);
        assert_eq!(s.attr.transfer(), 0);
    }

    #[test]
    fn pattern_and_actions_point_into_the_spec() {
        let s = FlowSpec::new(&rule());
        let p = s.pattern();
        let types: Vec<_> = p.iter().map(|i| i.type_).collect();
        assert_eq!(
            types,
            [
                sys::RTE_FLOW_ITEM_TYPE_ETH,
                sys::RTE_FLOW_ITEM_TYPE_IPV4,
                sys::RTE_FLOW_ITEM_TYPE_UDP,
                sys::RTE_FLOW_ITEM_TYPE_END
            ]
        );
        assert!(p[0].spec.is_null() && p[0].mask.is_null());
        assert_eq!(p[1].spec, ptr::from_ref(&s.ipv4_spec).cast());
        assert_eq!(p[1].mask, ptr::from_ref(&s.ipv4_mask).cast());
        assert_eq!(p[2].spec, ptr::from_ref(&s.udp_spec).cast());
        assert_eq!(p[2].mask, ptr::from_ref(&s.udp_mask).cast());
        assert!(p.iter().all(|i| i.last.is_null()));
        let a = s.actions();
        assert_eq!(a[0].type_, sys::RTE_FLOW_ACTION_TYPE_QUEUE);
        assert_eq!(a[0].conf, ptr::from_ref(&s.queue).cast());
        assert_eq!(a[1].type_, sys::RTE_FLOW_ACTION_TYPE_END);
    }

    #[test]
    fn errors_carry_the_pmd_message_or_strerror() {
        let mut e = empty_error();
        let msg = c"TC does not support UDP port masking";
        e.message = msg.as_ptr();
        let err = flow_error("rte_flow_validate", -95, &e);
        assert_eq!(
            err.to_string(),
            "rte_flow_validate: TC does not support UDP port masking (errno 95)"
        );
        assert_eq!(err.errno(), Some(95));
        let err = flow_error("rte_flow_create", 22, &empty_error());
        let DpdkError::Flow { message, errno, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*errno, 22);
        assert!(!message.is_empty(), "strerror text for EINVAL");
    }
}
