//! Flow steering: the `rte_flow` rules that send each worker's UDP ports to its RX queue
//! (blocks of ports under a mask, or one rule per port), installed all or none.

use std::net::Ipv4Addr;

use dpdk::{FlowRule, Port, UdpSteer};

use super::fail;
use crate::steer::{port_blocks, PortOwners, Steering, MAX_EXACT_RULES};
use crate::WorkerError;

/// Installs flow rules sending each worker's ports, on each of our addresses `ips`, to its
/// RX queue (see [`crate::steer`]): one rule per aligned block of ports, or — if the device
/// refuses port masks (at validation or at creation: TAP, for one, validates masks it then
/// cannot create) — one rule per port when there are at most [`MAX_EXACT_RULES`]. `Ok(None)`
/// when the device steers nothing this way and `steering` is [`Steering::Auto`].
pub(super) fn install_flow_rules(
    port: &Port,
    ips: &[Ipv4Addr],
    owners: &PortOwners,
    steering: Steering,
) -> Result<Option<Vec<FlowRule>>, WorkerError> {
    let masked = steer_rules(ips, owners, false);
    let e = match try_install(port, &masked) {
        Ok(rules) => return Ok(Some(rules)),
        Err(e) => e,
    };
    let exact: usize = (0..owners.workers())
        .filter_map(|w| owners.range(w))
        .map(|r| r.len() * ips.len())
        .sum();
    if exact > MAX_EXACT_RULES {
        return refuse(
            steering,
            format!("{e} (and {exact} ports are more than {MAX_EXACT_RULES} exact-port rules)"),
        );
    }
    match try_install(port, &steer_rules(ips, owners, true)) {
        Ok(rules) => {
            tracing::info!(reason = %e, rules = rules.len(), "device refuses UDP port masks; one flow rule per port");
            Ok(Some(rules))
        }
        Err(e2) => refuse(steering, format!("port masks: {e}; exact ports: {e2}")),
    }
}

/// The rules steering every worker's ports on every address: prefix blocks, or one per port.
fn steer_rules(ips: &[Ipv4Addr], owners: &PortOwners, exact: bool) -> Vec<UdpSteer> {
    let mut v = Vec::new();
    for &dst_ip in ips {
        for w in 0..owners.workers() {
            let Some(r) = owners.range(w) else { continue };
            let queue = w as u16;
            if exact {
                v.extend(r.map(|port| UdpSteer {
                    dst_ip,
                    port,
                    mask: 0xffff,
                    queue,
                }));
            } else {
                v.extend(
                    port_blocks(*r.start(), *r.end())
                        .into_iter()
                        .map(|(port, mask)| UdpSteer {
                            dst_ip,
                            port,
                            mask,
                            queue,
                        }),
                );
            }
        }
    }
    v
}

/// Validates every rule, then creates them all; on any failure the ones created so far are
/// destroyed (dropped) and the error returned.
fn try_install(port: &Port, rules: &[UdpSteer]) -> Result<Vec<FlowRule>, dpdk::DpdkError> {
    rules.iter().try_for_each(|r| port.flow_validate(r))?;
    rules.iter().map(|r| port.flow_create(r)).collect()
}

fn refuse(steering: Steering, why: String) -> Result<Option<Vec<FlowRule>>, WorkerError> {
    if steering == Steering::Flow {
        Err(fail(
            "flow steering (dpdk.steering = \"flow\")",
            format!("the device refuses the rules: {why}"),
        ))
    } else {
        tracing::info!(reason = %why, "no flow steering on this device; workers hand off datagrams for ports they do not own");
        Ok(None)
    }
}
