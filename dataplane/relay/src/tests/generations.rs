//! A port's old generation against its new leg (issue 7): commands naming the old id fail
//! without touching the new leg, and what the old leg left in the timer heaps (announcement
//! pacing, media timeout) acts on nothing, even when the new leg has the very same id (the
//! 12-bit generation wrapped).

use std::time::Duration;

use dp_api::{Codec, Command, CommandError, Event, LegId, PayloadTypes};

use super::{agent, clip, customer, spec, Pair, B, MS};

const OLD: LegId = LegId::new(20000, 1);
const NEW: LegId = LegId::new(20000, 2);

#[test]
fn commands_and_timers_of_an_old_generation_leave_the_new_leg_alone() {
    let mut p = Pair::new();
    let mut old = spec(OLD, Some(customer()));
    old.media_timeout = Some(Duration::from_secs(1));
    p.cmd(Command::AddLeg(old));
    p.cmd(Command::Play {
        leg: OLD,
        clip: clip(50),
        looping: true,
    });
    p.run_until(30 * MS);
    assert_eq!(p.sent.len(), 2, "announcing at 0 and 20 ms");
    // Removed mid-announcement, its timers still queued; the port's next leg comes in.
    p.cmd(Command::RemoveLeg { leg: OLD });
    let mut new = spec(NEW, Some(agent()));
    new.media_timeout = Some(Duration::from_secs(5));
    p.cmd(Command::AddLeg(new));
    p.cmd(Command::AddLeg(spec(B, None)));
    p.events();

    let failed = |leg| Event::CommandFailed {
        leg: Some(leg),
        error: CommandError::UnknownLeg,
    };
    let stale = [
        (
            Command::SetRemote {
                leg: OLD,
                remote: customer(),
                codec: Codec::Pcma,
            },
            OLD,
        ),
        (
            Command::Play {
                leg: OLD,
                clip: clip(5),
                looping: false,
            },
            OLD,
        ),
        (
            Command::SetPayloadTypes {
                leg: OLD,
                types: PayloadTypes::of(Codec::Pcma),
            },
            OLD,
        ),
        (Command::StopPlay { leg: OLD }, OLD),
        (Command::Bridge { a: OLD, b: B }, OLD),
        (Command::Bridge { a: B, b: OLD }, B),
        (Command::Unbridge { leg: OLD }, OLD),
        (Command::QueryStats { leg: OLD }, OLD),
        (Command::RemoveLeg { leg: OLD }, OLD),
    ];
    let n = stale.len() as u64;
    for (cmd, reported) in stale {
        p.cmd(cmd.clone());
        assert_eq!(p.events(), vec![failed(reported)], "{cmd:?}");
    }
    assert_eq!(p.relay.stats().commands_failed, n);
    let leg = p.relay.table().get(0).unwrap();
    assert_eq!(
        (
            leg.id,
            leg.remote(),
            leg.cold.types.codec,
            leg.peer,
            leg.playback().is_some()
        ),
        (NEW, Some(agent()), Codec::Pcmu, None, false)
    );

    // The old leg's announcement and media-timeout timers fire into the new leg's slot.
    p.run_until(Duration::from_secs(2));
    assert_eq!(p.sent.len(), 2, "no announcement to the new leg");
    assert!(p.events().is_empty(), "no media timeout for either id");
    // The new leg's own timeout: 5 s after its AddLeg at 30 ms.
    p.run_until(Duration::from_millis(5029));
    assert!(p.events().is_empty());
    p.run_until(Duration::from_millis(5030));
    assert_eq!(p.events(), vec![Event::MediaTimeout { leg: NEW }]);
}

#[test]
fn a_wrapped_id_inherits_no_media_timeout() {
    // The same id again (4096 generations later): the old leg's media timer, due at 1 s,
    // must not report a timeout the new leg has not had.
    let mut p = Pair::new();
    let mut s = spec(OLD, Some(customer()));
    s.media_timeout = Some(Duration::from_secs(1));
    p.cmd(Command::AddLeg(s.clone()));
    p.run_until(500 * MS);
    p.cmd(Command::RemoveLeg { leg: OLD });
    p.run_until(600 * MS);
    p.cmd(Command::AddLeg(s));
    p.events();
    p.run_until(1599 * MS);
    assert!(p.events().is_empty());
    p.run_until(1600 * MS);
    assert_eq!(p.events(), vec![Event::MediaTimeout { leg: OLD }]);
    p.run_until(Duration::from_secs(10));
    assert!(p.events().is_empty(), "reported once");
}
