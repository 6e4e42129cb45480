use std::time::Duration;

use super::*;

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

fn setup(t0: Instant) -> Acd {
    let mut acd = Acd::new();
    acd.add_business(id("acme"));
    acd.add_business(id("globex"));
    acd.add_agent(id("alice"), vec![id("acme")], t0 + Duration::from_secs(2))
        .unwrap();
    acd.add_agent(
        id("bob"),
        vec![id("acme"), id("globex")],
        t0 + Duration::from_secs(1),
    )
    .unwrap();
    acd.add_agent(id("carol"), vec![id("globex")], t0).unwrap();
    acd
}

#[test]
fn longest_idle_agent_serving_the_business_is_chosen() {
    let t0 = Instant::now();
    let mut acd = setup(t0);
    let c1: CallId = id("c1");
    assert_eq!(
        acd.request(&c1, &id("acme"), None, &[]),
        Assignment::Assigned(id("bob"))
    );
    assert_eq!(
        acd.state(&id("bob")),
        Some(&AgentState::Reserved(c1.clone()))
    );
    assert_eq!(
        acd.request(&id("c2"), &id("acme"), None, &[]),
        Assignment::Assigned(id("alice"))
    );
    assert_eq!(
        acd.request(&id("c3"), &id("acme"), None, &[]),
        Assignment::Queued
    );
    assert_eq!(acd.queue_len(&id("acme")), 1);
}

#[test]
fn preferred_agent_wins_when_idle_and_eligible() {
    let t0 = Instant::now();
    let mut acd = setup(t0);
    let alice: AgentId = id("alice");
    assert_eq!(
        acd.request(&id("c1"), &id("acme"), Some(&alice), &[]),
        Assignment::Assigned(alice.clone())
    );
    // alice is reserved now: the next preference falls back to the longest idle.
    assert_eq!(
        acd.request(&id("c2"), &id("acme"), Some(&alice), &[]),
        Assignment::Assigned(id("bob"))
    );
    // carol does not serve acme.
    let mut acd = setup(t0);
    assert_eq!(
        acd.request(&id("c3"), &id("acme"), Some(&id("carol")), &[]),
        Assignment::Assigned(id("bob"))
    );
}

#[test]
fn exclusion_and_unavailable() {
    let t0 = Instant::now();
    let mut acd = setup(t0);
    let ex = [id("bob")];
    assert_eq!(
        acd.request(&id("c1"), &id("acme"), None, &ex),
        Assignment::Assigned(id("alice"))
    );
    // Only bob and alice serve acme; alice is reserved, bob excluded: wait for alice.
    assert_eq!(
        acd.request(&id("c2"), &id("acme"), None, &ex),
        Assignment::Queued
    );
    // Excluding both: nobody could ever take it.
    let ex2 = [id("bob"), id("alice")];
    assert_eq!(
        acd.request(&id("c3"), &id("acme"), None, &ex2),
        Assignment::Unavailable
    );
    assert_eq!(
        acd.request(&id("c4"), &id("nobody"), None, &[]),
        Assignment::Unavailable
    );
    // All of globex's agents offline.
    assert!(acd.set_offline(&id("carol")));
    acd.request(&id("c5"), &id("globex"), None, &[]); // takes bob
    assert!(acd.set_offline(&id("bob"))); // bob keeps his call
    assert_eq!(acd.state(&id("bob")), Some(&AgentState::Reserved(id("c5"))));
}

#[test]
fn release_hands_the_agent_to_the_oldest_waiting_call() {
    let t0 = Instant::now();
    let mut acd = setup(t0);
    let t1 = t0 + Duration::from_secs(10);
    acd.request(&id("c1"), &id("acme"), None, &[]); // bob
    acd.request(&id("c2"), &id("globex"), None, &[]); // carol
    acd.request(&id("c3"), &id("acme"), None, &[]); // alice
    assert_eq!(
        acd.request(&id("g1"), &id("globex"), None, &[]),
        Assignment::Queued
    );
    assert_eq!(
        acd.request(&id("a1"), &id("acme"), None, &[]),
        Assignment::Queued
    );
    assert_eq!(
        acd.request(&id("a2"), &id("acme"), None, &[]),
        Assignment::Queued
    );
    assert_eq!(acd.position(&id("a2")), Some(1));
    assert!(acd.mark_busy(&id("bob")));
    assert_eq!(acd.state(&id("bob")), Some(&AgentState::Busy(id("c1"))));
    // bob serves both; g1 is older than a1.
    assert_eq!(acd.release(&id("bob"), t1), vec![(id("g1"), id("bob"))]);
    assert_eq!(acd.release(&id("alice"), t1), vec![(id("a1"), id("alice"))]);
    assert!(acd.cancel(&id("a2")));
    assert!(!acd.cancel(&id("a2")));
    assert_eq!(acd.release(&id("carol"), t1), vec![]);
    assert_eq!(acd.state(&id("carol")), Some(&AgentState::Idle));
}

#[test]
fn released_agent_skips_calls_that_excluded_it() {
    let t0 = Instant::now();
    let mut acd = setup(t0);
    acd.request(&id("c1"), &id("acme"), None, &[]); // bob
    acd.request(&id("c2"), &id("acme"), None, &[]); // alice
    acd.request(&id("w1"), &id("acme"), None, &[id("bob")]);
    acd.request(&id("w2"), &id("acme"), None, &[]);
    assert_eq!(acd.release(&id("bob"), t0), vec![(id("w2"), id("bob"))]);
    assert_eq!(acd.release(&id("alice"), t0), vec![(id("w1"), id("alice"))]);
}

#[test]
fn longest_idle_uses_release_time() {
    let t0 = Instant::now();
    let mut acd = setup(t0);
    acd.request(&id("c1"), &id("acme"), None, &[]); // bob
    acd.request(&id("c2"), &id("acme"), None, &[]); // alice
    acd.release(&id("alice"), t0 + Duration::from_secs(5));
    acd.release(&id("bob"), t0 + Duration::from_secs(6));
    assert_eq!(
        acd.request(&id("c3"), &id("acme"), None, &[]),
        Assignment::Assigned(id("alice"))
    );
}

#[test]
fn online_offline_and_errors() {
    let t0 = Instant::now();
    let mut acd = setup(t0);
    assert!(acd.set_offline(&id("carol")));
    assert_eq!(acd.state(&id("carol")), Some(&AgentState::Offline));
    acd.request(&id("c1"), &id("globex"), None, &[]); // bob
    assert_eq!(
        acd.request(&id("g1"), &id("globex"), None, &[]),
        Assignment::Queued
    );
    assert_eq!(
        acd.set_online(&id("carol"), t0),
        vec![(id("g1"), id("carol"))]
    );
    assert!(matches!(
        acd.add_agent(id("bob"), vec![], t0),
        Err(Error::DuplicateAgent(_))
    ));
    assert!(matches!(
        acd.add_agent(id("dan"), vec![id("x")], t0),
        Err(Error::UnknownBusiness(_))
    ));
    assert!(acd.mark_busy(&id("carol")));
    assert_eq!(acd.state(&id("carol")), Some(&AgentState::Busy(id("g1"))));
    assert!(!acd.mark_busy(&id("carol")), "busy is not reserved");
    assert!(!acd.mark_busy(&id("nobody")));
}

// ---- skills, presence, wrap-up, preferred waits, estimated wait ----

const SEC: Duration = Duration::from_secs(1);

fn profile(businesses: &[&str], skills: &[&str], wrap_up: Duration) -> AgentProfile {
    AgentProfile {
        businesses: businesses.iter().map(|b| id(b)).collect(),
        skills: skills.iter().map(|s| id(s)).collect(),
        wrap_up,
    }
}

/// acme: dora (german, idle longest), erik (german, billing), fay (no skills, idle last).
fn skilled(t0: Instant) -> Acd {
    let mut acd = Acd::new();
    acd.add_business(id("acme"));
    for (name, skills, idle) in [
        ("dora", &["german"][..], 0),
        ("erik", &["german", "billing"][..], 1),
        ("fay", &[][..], 2),
    ] {
        acd.add_agent_with(
            id(name),
            profile(&["acme"], skills, 10 * SEC),
            t0 + idle * SEC,
        )
        .unwrap();
    }
    acd
}

fn ask(call: &str, skill: Option<&str>, preferred: Option<&str>) -> AgentRequest {
    AgentRequest {
        skill: skill.map(id),
        preferred: preferred.map(id),
        ..AgentRequest::new(id(call), id("acme"))
    }
}

#[test]
fn the_longest_idle_agent_with_the_skill_is_chosen() {
    let t0 = Instant::now();
    let mut acd = skilled(t0);
    assert_eq!(
        acd.request_agent(ask("c1", Some("billing"), None), t0),
        Assignment::Assigned(id("erik"))
    );
    assert_eq!(
        acd.request_agent(ask("c2", Some("german"), None), t0),
        Assignment::Assigned(id("dora"))
    );
    // Only fay is free; she lacks german: wait for dora or erik.
    assert_eq!(
        acd.request_agent(ask("c3", Some("german"), None), t0),
        Assignment::Queued
    );
    assert_eq!(
        acd.request_agent(ask("c4", Some("french"), None), t0),
        Assignment::Unavailable
    );
    // No skill required: fay.
    assert_eq!(
        acd.request_agent(ask("c5", None, None), t0),
        Assignment::Assigned(id("fay"))
    );
    // fay is freed first but cannot take c3; dora can (reserved: no wrap-up).
    assert_eq!(acd.release(&id("fay"), t0 + SEC), vec![]);
    assert_eq!(
        acd.release(&id("dora"), t0 + SEC),
        vec![(id("c3"), id("dora"))]
    );
}

#[test]
fn presence_names_are_the_contract() {
    for (p, s) in [
        (Presence::Available, "available"),
        (Presence::OnCall, "on_call"),
        (Presence::WrapUp, "wrap_up"),
        (Presence::Away, "away"),
        (Presence::Offline, "offline"),
    ] {
        assert_eq!(p.as_str(), s);
        assert_eq!(p.to_string(), s);
        assert_eq!(s.parse::<Presence>().unwrap(), p);
        assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{s}\""));
        assert_eq!(
            serde_json::from_str::<Presence>(&format!("\"{s}\"")).unwrap(),
            p
        );
    }
    assert_eq!(
        "busy".parse::<Presence>(),
        Err(Error::BadPresence("busy".into()))
    );
    assert!(serde_json::from_str::<Presence>("\"Available\"").is_err());
}

#[test]
fn wrap_up_follows_a_talked_call_and_tick_ends_it() {
    let t0 = Instant::now();
    let mut acd = skilled(t0);
    let dora: AgentId = id("dora");
    acd.request_agent(ask("c1", Some("german"), None), t0); // dora
    acd.request_agent(ask("c2", Some("german"), None), t0); // erik
    assert_eq!(acd.presence(&dora), Some(Presence::OnCall));
    assert!(acd.mark_busy(&dora));
    assert_eq!(
        acd.request_agent(ask("w1", Some("german"), None), t0),
        Assignment::Queued
    );
    let t1 = t0 + 60 * SEC;
    assert_eq!(acd.release(&dora, t1), vec![]);
    assert_eq!(
        acd.state(&dora),
        Some(&AgentState::WrapUp {
            until: t1 + 10 * SEC
        })
    );
    assert_eq!(acd.presence(&dora), Some(Presence::WrapUp));
    assert_eq!(acd.poll_timeout(), Some(t1 + 10 * SEC));
    assert_eq!(acd.tick(t1 + 9 * SEC), vec![]);
    assert_eq!(acd.tick(t1 + 10 * SEC), vec![(id("w1"), dora.clone())]);
    assert_eq!(acd.poll_timeout(), None);
    // A reservation that never reached the agent (erik was not marked busy): no wrap-up.
    assert_eq!(acd.release(&id("erik"), t1), vec![]);
    assert_eq!(acd.presence(&id("erik")), Some(Presence::Available));
}

#[test]
fn wrap_up_end_counts_as_idle_since() {
    let t0 = Instant::now();
    let mut acd = skilled(t0);
    acd.request_agent(ask("c1", Some("german"), None), t0); // dora
    assert!(acd.mark_busy(&id("dora")));
    acd.release(&id("dora"), t0 + 100 * SEC); // wrap-up until t0+110
                                              // fay is idle since t0+2, erik since t0+1; ticking late must not reorder dora.
    acd.tick(t0 + 500 * SEC);
    assert_eq!(
        acd.request_agent(ask("c2", Some("german"), None), t0 + 500 * SEC),
        Assignment::Assigned(id("erik"))
    );
    assert_eq!(
        acd.request_agent(ask("c3", Some("german"), None), t0 + 500 * SEC),
        Assignment::Assigned(id("dora"))
    );
}

#[test]
fn a_busy_preferred_agent_is_waited_for_then_anyone_qualifies() {
    let t0 = Instant::now();
    let mut acd = skilled(t0);
    acd.request_agent(ask("c1", None, Some("erik")), t0);
    assert!(acd.mark_busy(&id("erik")));
    // erik is busy; dora and fay are free but the call waits for erik.
    let t1 = t0 + 5 * SEC;
    assert_eq!(
        acd.request_agent(ask("c2", None, Some("erik")), t1),
        Assignment::Queued
    );
    assert_eq!(acd.poll_timeout(), Some(t1 + 30 * SEC));
    assert_eq!(acd.tick(t1 + 29 * SEC), vec![]);
    assert_eq!(acd.position(&id("c2")), Some(0));
    // The wait is over: the longest-idle qualifying agent.
    assert_eq!(acd.tick(t1 + 30 * SEC), vec![(id("c2"), id("dora"))]);
    assert_eq!(acd.poll_timeout(), None);
}

#[test]
fn a_preferred_agent_freed_in_time_takes_its_call_before_older_ones() {
    let t0 = Instant::now();
    let settings = AcdSettings {
        preferred_wait: 60 * SEC,
        ..AcdSettings::default()
    };
    let mut acd = Acd::with_settings(settings);
    acd.add_business(id("acme"));
    acd.add_agent(id("dora"), vec![id("acme")], t0).unwrap();
    acd.add_agent(id("erik"), vec![id("acme")], t0).unwrap();
    acd.request_agent(ask("c1", None, None), t0); // dora
    acd.request_agent(ask("c2", None, None), t0); // erik
    assert_eq!(
        acd.request_agent(ask("old", None, None), t0),
        Assignment::Queued
    );
    assert_eq!(
        acd.request_agent(ask("fan", None, Some("erik")), t0 + SEC),
        Assignment::Queued
    );
    // dora is freed first: "fan" is held for erik, so dora takes "old".
    assert_eq!(
        acd.release(&id("dora"), t0 + 2 * SEC),
        vec![(id("old"), id("dora"))]
    );
    // A later plain call queues behind; erik, freed, takes "fan" first.
    assert_eq!(
        acd.request_agent(ask("new", None, None), t0 + 3 * SEC),
        Assignment::Queued
    );
    assert_eq!(
        acd.release(&id("erik"), t0 + 4 * SEC),
        vec![(id("fan"), id("erik"))]
    );
}

#[test]
fn no_wait_for_a_preferred_agent_that_is_away_or_goes_away() {
    let t0 = Instant::now();
    let mut acd = skilled(t0);
    acd.set_presence(&id("erik"), Presence::Away, t0).unwrap();
    assert_eq!(
        acd.request_agent(ask("c1", None, Some("erik")), t0),
        Assignment::Assigned(id("dora"))
    );
    // erik back and taking a call; c2 waits for him, fay is free.
    acd.set_presence(&id("erik"), Presence::Available, t0)
        .unwrap();
    acd.request_agent(ask("c2", None, Some("erik")), t0);
    assert_eq!(
        acd.state(&id("erik")),
        Some(&AgentState::Reserved(id("c2")))
    );
    assert_eq!(
        acd.request_agent(ask("c3", None, Some("erik")), t0),
        Assignment::Queued
    );
    // erik will go offline after this call: the hold ends, fay takes c3 at once.
    assert_eq!(
        acd.set_presence(&id("erik"), Presence::Offline, t0 + SEC),
        Ok(vec![(id("c3"), id("fay"))])
    );
    assert_eq!(acd.release(&id("erik"), t0 + 2 * SEC), vec![]);
    assert_eq!(acd.presence(&id("erik")), Some(Presence::Offline));
    // preferred_wait 0: never held.
    let mut acd = Acd::with_settings(AcdSettings {
        preferred_wait: Duration::ZERO,
        ..AcdSettings::default()
    });
    acd.add_business(id("acme"));
    acd.add_agent(id("dora"), vec![id("acme")], t0).unwrap();
    acd.add_agent(id("erik"), vec![id("acme")], t0).unwrap();
    acd.request_agent(ask("c1", None, Some("erik")), t0);
    assert_eq!(
        acd.request_agent(ask("c2", None, Some("erik")), t0),
        Assignment::Assigned(id("dora"))
    );
}

#[test]
fn an_agent_that_does_not_answer_is_set_away() {
    let t0 = Instant::now();
    let mut acd = skilled(t0);
    let dora: AgentId = id("dora");
    acd.request_agent(ask("c1", None, None), t0); // dora
                                                  // Not for this call: nothing happens.
    assert_eq!(acd.no_answer(&dora, &id("other"), t0), vec![]);
    assert_eq!(acd.state(&dora), Some(&AgentState::Reserved(id("c1"))));
    assert_eq!(acd.no_answer(&dora, &id("c1"), t0 + 20 * SEC), vec![]);
    assert_eq!(acd.presence(&dora), Some(Presence::Away));
    // The call asks again without her; an away agent is never assigned.
    let retry = AgentRequest {
        exclude: vec![dora.clone()],
        ..ask("c1", None, None)
    };
    assert_eq!(
        acd.request_agent(retry, t0 + 20 * SEC),
        Assignment::Assigned(id("erik"))
    );
    assert_eq!(
        acd.request_agent(ask("c2", None, None), t0 + 20 * SEC),
        Assignment::Assigned(id("fay"))
    );
    assert_eq!(
        acd.request_agent(ask("c3", None, None), t0 + 20 * SEC),
        Assignment::Queued,
        "away agents still count as coming back"
    );
    assert_eq!(
        acd.set_presence(&dora, Presence::Available, t0 + 30 * SEC),
        Ok(vec![(id("c3"), dora.clone())])
    );
    // A talking agent is not affected.
    assert!(acd.mark_busy(&dora));
    assert_eq!(acd.no_answer(&dora, &id("c3"), t0 + 40 * SEC), vec![]);
    assert_eq!(acd.presence(&dora), Some(Presence::OnCall));
}

#[test]
fn set_presence_rules() {
    let t0 = Instant::now();
    let mut acd = skilled(t0);
    let dora: AgentId = id("dora");
    for p in [Presence::OnCall, Presence::WrapUp] {
        assert_eq!(
            acd.set_presence(&dora, p, t0),
            Err(Error::PresenceNotSettable(p))
        );
    }
    assert_eq!(
        acd.set_presence(&id("nobody"), Presence::Away, t0),
        Err(Error::UnknownAgent(id("nobody")))
    );
    assert_eq!(
        Error::PresenceNotSettable(Presence::OnCall).to_string(),
        "presence on_call is set by calls, not by request (use available, away or offline)"
    );
    // Away while talking: applied at release, without wrap-up; available cancels it.
    acd.request_agent(ask("c1", None, None), t0);
    assert!(acd.mark_busy(&dora));
    acd.set_presence(&dora, Presence::Away, t0).unwrap();
    assert_eq!(acd.presence(&dora), Some(Presence::OnCall));
    acd.set_presence(&dora, Presence::Available, t0).unwrap();
    acd.release(&dora, t0 + SEC);
    assert_eq!(acd.presence(&dora), Some(Presence::WrapUp));
    // Available during wrap-up ends it early.
    acd.set_presence(&dora, Presence::Available, t0 + 2 * SEC)
        .unwrap();
    assert_eq!(acd.presence(&dora), Some(Presence::Available));
    acd.request_agent(ask("c2", None, Some("dora")), t0 + 3 * SEC);
    assert!(acd.mark_busy(&dora));
    acd.set_presence(&dora, Presence::Away, t0 + 3 * SEC)
        .unwrap();
    acd.release(&dora, t0 + 4 * SEC);
    assert_eq!(acd.presence(&dora), Some(Presence::Away));
    // Offline then available: a waiting call is handed over.
    acd.set_presence(&dora, Presence::Offline, t0 + 5 * SEC)
        .unwrap();
    acd.request_agent(ask("c3", None, None), t0 + 5 * SEC); // erik
    acd.request_agent(ask("c4", None, None), t0 + 5 * SEC); // fay
    assert_eq!(
        acd.request_agent(ask("c5", None, None), t0 + 5 * SEC),
        Assignment::Queued
    );
    assert_eq!(
        acd.set_presence(&dora, Presence::Available, t0 + 6 * SEC),
        Ok(vec![(id("c5"), dora.clone())])
    );
}

#[test]
fn set_offline_while_busy_takes_effect_at_release() {
    let t0 = Instant::now();
    let mut acd = setup(t0);
    acd.request(&id("c1"), &id("acme"), None, &[]); // bob
    assert!(acd.mark_busy(&id("bob")));
    assert!(acd.set_offline(&id("bob")));
    assert_eq!(acd.state(&id("bob")), Some(&AgentState::Busy(id("c1"))));
    acd.release(&id("bob"), t0);
    assert_eq!(acd.state(&id("bob")), Some(&AgentState::Offline));
}

#[test]
fn estimated_wait_from_recent_handle_times() {
    let t0 = Instant::now();
    let mut acd = skilled(t0);
    let acme: BusinessId = id("acme");
    // No history: 3 minutes per call, 3 agents working.
    assert_eq!(acd.estimated_wait(&acme, 0), Some(60 * SEC));
    assert_eq!(acd.estimated_wait(&acme, 2), Some(180 * SEC));
    acd.record_handle_time(&acme, 120 * SEC);
    acd.record_handle_time(&acme, 240 * SEC);
    assert_eq!(acd.estimated_wait(&acme, 0), Some(60 * SEC));
    assert_eq!(acd.estimated_wait(&acme, 5), Some(360 * SEC));
    // Only the last 50 count.
    for _ in 0..50 {
        acd.record_handle_time(&acme, 30 * SEC);
    }
    assert_eq!(acd.estimated_wait(&acme, 2), Some(30 * SEC));
    // Away and offline agents do not serve; on-call and wrap-up ones do.
    acd.set_presence(&id("dora"), Presence::Away, t0).unwrap();
    acd.set_presence(&id("erik"), Presence::Offline, t0)
        .unwrap();
    acd.request_agent(ask("c1", None, None), t0); // fay
    assert_eq!(acd.estimated_wait(&acme, 2), Some(90 * SEC));
    acd.set_presence(&id("fay"), Presence::Offline, t0).unwrap();
    acd.release(&id("fay"), t0);
    assert_eq!(acd.estimated_wait(&acme, 0), None);
    assert_eq!(acd.estimated_wait(&id("nobody"), 0), None);
    acd.record_handle_time(&id("nobody"), SEC); // ignored
}

#[test]
fn an_updated_agent_takes_calls_of_its_new_business() {
    let t0 = Instant::now();
    let mut acd = Acd::new();
    let (a, b) = (BusinessId::new("a").unwrap(), BusinessId::new("b").unwrap());
    acd.add_business(a.clone());
    acd.add_business(b.clone());
    let alice = AgentId::new("alice").unwrap();
    acd.add_agent(alice.clone(), vec![a.clone()], t0).unwrap();
    let call = CallId::new("c_1").unwrap();
    assert_eq!(acd.request(&call, &b, None, &[]), Assignment::Unavailable);
    // Queue it for b by hand: nobody serves b yet, so it would be Unavailable; give bob
    // (offline, serving b) so that the call waits.
    let bob = AgentId::new("bob").unwrap();
    acd.add_agent(bob.clone(), vec![b.clone()], t0).unwrap();
    acd.set_presence(&bob, Presence::Away, t0).unwrap();
    assert_eq!(acd.request(&call, &b, None, &[]), Assignment::Queued);
    let handoffs = acd
        .update_agent(
            &alice,
            AgentProfile {
                businesses: vec![a, b.clone()],
                ..AgentProfile::default()
            },
            t0,
        )
        .unwrap();
    assert_eq!(handoffs, vec![(call, alice.clone())]);
    let unknown = AgentProfile {
        businesses: vec![BusinessId::new("zzz").unwrap()],
        ..AgentProfile::default()
    };
    assert!(acd.update_agent(&alice, unknown, t0).is_err());
    assert!(acd
        .update_agent(
            &AgentId::new("nobody").unwrap(),
            AgentProfile::default(),
            t0
        )
        .is_err());
}

#[test]
fn hand_off_past_the_first_idle_agents_keeps_longest_idle_order() {
    // Eight idle agents without the skill (n0 idle longest), then s1 with it.
    let t0 = Instant::now();
    let mut acd = Acd::new();
    acd.add_business(id("acme"));
    for i in 0..8u32 {
        acd.add_agent_with(
            id(&format!("n{i}")),
            profile(&["acme"], &[], Duration::ZERO),
            t0 + i * SEC,
        )
        .unwrap();
    }
    acd.add_agent_with(
        id("s1"),
        profile(&["acme"], &["x"], Duration::ZERO),
        t0 + 20 * SEC,
    )
    .unwrap();
    assert_eq!(
        acd.request_agent(ask("c1", Some("x"), None), t0),
        Assignment::Assigned(id("s1"))
    );
    for c in ["c2", "c3"] {
        assert_eq!(
            acd.request_agent(ask(c, Some("x"), None), t0),
            Assignment::Queued
        );
    }
    // n6 learns the skill: found after the first LAZY_STEPS agents, among the sorted rest.
    assert_eq!(
        acd.update_agent(&id("n6"), profile(&["acme"], &["x"], Duration::ZERO), t0),
        Ok(vec![(id("c2"), id("n6"))])
    );
    // n2 learns it: found among the first ones; nothing waits afterwards.
    assert_eq!(
        acd.update_agent(&id("n2"), profile(&["acme"], &["x"], Duration::ZERO), t0),
        Ok(vec![(id("c3"), id("n2"))])
    );
    assert_eq!(acd.queue_len(&id("acme")), 0);
}

#[test]
fn can_serve_asks_the_unavailable_rule_without_reserving() {
    let t0 = Instant::now();
    let mut acd = setup(t0);
    let (acme, globex): (BusinessId, BusinessId) = (id("acme"), id("globex"));
    assert!(acd.can_serve(&acme, None, &[]));
    assert!(
        !acd.can_serve(&id("initech"), None, &[]),
        "unknown business"
    );
    assert!(
        !acd.can_serve(&acme, Some(&id("fr")), &[]),
        "nobody has the skill"
    );
    assert!(!acd.can_serve(&acme, None, &[id("alice"), id("bob")]));
    assert_eq!(
        acd.state(&id("alice")),
        Some(&AgentState::Idle),
        "nothing reserved"
    );
    // Busy or reserved agents still serve (the call would wait); offline ones do not.
    assert_eq!(
        acd.request(&id("c1"), &globex, None, &[]),
        Assignment::Assigned(id("carol"))
    );
    assert!(acd.can_serve(&globex, None, &[id("bob")]));
    assert!(acd.set_offline(&id("alice")) && acd.set_offline(&id("bob")));
    assert!(!acd.can_serve(&acme, None, &[]));
    assert_eq!(
        acd.request(&id("c2"), &acme, None, &[]),
        Assignment::Unavailable
    );
}
