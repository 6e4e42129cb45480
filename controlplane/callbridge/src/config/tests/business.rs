//! `[[business]]`: keys and origins, time zone and hours, webhook, caller id, region, retries,
//! limits and number policy. Lines refer to `FULL` with `keys` inserted from line 13 on.

use flows::hours::OpeningHours;
use flows::numbers::NumberPolicy;

use super::*;

/// `FULL` with `keys` (which may span lines) after `name`, from line 13 on.
fn biz(keys: &str) -> String {
    with_line(12, &format!("name = \"ACME Corp\"\n{keys}"))
}

/// A second business `globex` (its `[[business]]` on line 13) with `keys` from line 16 on.
fn two(keys: &str) -> String {
    biz(&format!(
        "[[business]]\nid = \"globex\"\nname = \"Globex\"\n{keys}"
    ))
}

fn first(text: &str) -> BusinessConfig {
    parse(text).unwrap().business.remove(0)
}

/// An invalid-value error (not a schema error) starting with `prefix` (`LINE: KEY: `).
fn invalid(text: &str, prefix: &str) -> String {
    let e = parse(text).unwrap_err();
    assert_eq!(e.kind, ConfigErrorKind::Invalid, "{e}");
    let e = e.to_string();
    assert!(
        e.starts_with(&format!("/etc/callbridge/cb.toml:{prefix}")),
        "{e:?} should start with {prefix:?}"
    );
    e
}

#[test]
fn every_business_key_has_a_safe_default() {
    let b = first(FULL);
    assert!(b.api_keys.is_empty());
    assert_eq!(b.widget_key, None);
    assert!(b.allowed_origins.is_empty());
    assert_eq!(b.time_zone, "UTC");
    assert!(b.hours.is_empty() && b.holidays.is_empty());
    assert_eq!(b.opening_hours, None, "always open");
    assert_eq!((&b.webhook_url, &b.webhook_secret), (&None, &None));
    assert_eq!(b.webhook(), None);
    assert_eq!((&b.caller_id, &b.default_country), (&None, &None));
    assert_eq!(b.preferred_wait(), Duration::from_secs(30));
    let r = b.retry.policy();
    assert_eq!((r.attempts, r.spacing), (3, Duration::from_secs(300)));
    assert_eq!(r.retry_on, flows::retry::RetryPolicy::default().retry_on);
    assert_eq!(
        b.limits,
        super::super::business::BusinessLimitsConfig::default()
    );
    let global = LimitsConfig::default();
    let l = b.rate_limits(&global);
    assert_eq!(
        (
            l.per_number_per_hour,
            l.per_ip_per_minute,
            l.per_business_per_minute,
            l.max_concurrent_calls
        ),
        (3, 10, 600, 50)
    );
    assert_eq!(b.number_policy.policy(), NumberPolicy::default());
    assert_eq!(
        b,
        BusinessConfig::new(BusinessId::new("acme").unwrap(), "ACME Corp")
    );
}

#[test]
fn every_business_key_is_read() {
    let b = first(&biz(
        r#"api_keys = ["k-acme-0123456789abcdef", "k-acme-fedcba9876543210"]
widget_key = "w-acme-42"
allowed_origins = ["https://shop.example", "http://localhost:8080", "https://[::1]:8443"]
time_zone = "Europe/Berlin"
hours = ["mon-fri 09:00-17:30", "sat 10:00-14:00"]
holidays = ["2026-12-25"]
webhook_url = "https://crm.example/hook?src=cb"
webhook_secret = "s-acme-0123456789abcdef"
caller_id = "+15550100"
default_country = "US"
preferred_wait_secs = 45
[business.retry]
attempts = 5
spacing_secs = 60
[business.limits]
max_concurrent_calls = 7
per_number_per_hour = 1
per_business_per_minute = 0
[business.number_policy]
allowed_country_codes = [1, 44]"#,
    ));
    let keys: Vec<&str> = b.api_keys.iter().map(Secret::expose).collect();
    assert_eq!(keys, ["k-acme-0123456789abcdef", "k-acme-fedcba9876543210"]);
    assert_eq!(b.widget_key.as_deref(), Some("w-acme-42"));
    assert_eq!(b.allowed_origins.len(), 3);
    assert_eq!(b.time_zone, "Europe/Berlin");
    assert_eq!(
        b.opening_hours,
        Some(
            OpeningHours::parse(
                "Europe/Berlin",
                &["mon-fri 09:00-17:30", "sat 10:00-14:00"],
                &["2026-12-25"]
            )
            .unwrap()
        )
    );
    let (url, secret) = b.webhook().unwrap();
    assert_eq!(
        (url, secret.expose()),
        ("https://crm.example/hook?src=cb", "s-acme-0123456789abcdef")
    );
    assert_eq!(b.caller_id.as_deref(), Some("+15550100"));
    assert_eq!(b.default_country.as_deref(), Some("US"));
    assert_eq!(b.preferred_wait(), Duration::from_secs(45));
    let r = b.retry.policy();
    assert_eq!((r.attempts, r.spacing), (5, Duration::from_secs(60)));
    let l = b.rate_limits(&LimitsConfig::default());
    assert_eq!(
        (
            l.per_number_per_hour,
            l.per_ip_per_minute,
            l.per_business_per_minute,
            l.max_concurrent_calls
        ),
        (1, 10, 0, 7)
    );
    assert_eq!(b.number_policy.policy().allowed_country_codes, [1, 44]);
    assert_eq!(
        b.number_policy.policy().refuse_types,
        NumberPolicy::DEFAULT_REFUSED
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let c = parse(&biz(
        "api_keys = [\"k-acme-0123456789abcdef\"]\nwebhook_url = \"https://crm.example/hook\"\nwebhook_secret = \"s-acme-0123456789abcdef\"",
    ))
    .unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.contains("0123456789abcdef"), "{debug}");
    assert!(debug.contains("api_keys: [\"***\"]"), "{debug}");
    assert!(debug.contains("webhook_secret: Some(\"***\")"), "{debug}");
}

#[test]
fn api_keys() {
    let e = invalid(
        &biz("api_keys = [\"k-acme-0123456789abcdef\", \"short-key\"]"),
        "13: business[0].api_keys[1]: ",
    );
    assert!(
        e.ends_with("an API key needs at least 16 characters; this one has 9"),
        "{e}"
    );
    assert!(!e.contains("short-key"), "the key is never quoted: {e}");
    let e = invalid(
        &biz("api_keys = [\n  \"k-acme 0123456789abcdef\"]"),
        "14: business[0].api_keys[0]: ",
    );
    assert!(
        e.contains("only visible ASCII characters (no spaces)"),
        "{e}"
    );
    invalid(
        &biz("api_keys = [\"k-acme-0123456789abcdef\", \"k-acme-0123456789abcdef\"]"),
        "13: business[0].api_keys[1]: is listed twice",
    );
    let e = invalid(
        &two("api_keys = [\"k-acme-0123456789abcdef\"]").replace(
            "name = \"ACME Corp\"\n",
            "name = \"ACME Corp\"\napi_keys = [\"k-acme-0123456789abcdef\"]\n",
        ),
        "17: business[1].api_keys[0]: ",
    );
    assert!(
        e.ends_with("is also an API key of business \"acme\"; API keys must be unique"),
        "{e}"
    );
    let e = assert_prefix(
        &biz("api_keys = \"k-acme-0123456789abcdef\""),
        "13: business[0].api_keys: ",
    );
    assert!(e.contains("invalid type"), "{e}");
}

#[test]
fn widget_key() {
    let e = invalid(&biz("widget_key = \"w-1\""), "13: business[0].widget_key: ");
    assert!(
        e.ends_with("a widget key needs at least 8 characters; this one has 3"),
        "{e}"
    );
    invalid(
        &biz("widget_key = \"w-acme\\t42\""),
        "13: business[0].widget_key: ",
    );
    invalid(
        &biz("widget_key = \"w-acmé-42\""),
        "13: business[0].widget_key: ",
    );
    let text = two("widget_key = \"w-acme-42\"").replace(
        "name = \"ACME Corp\"\n",
        "name = \"ACME Corp\"\nwidget_key = \"w-acme-42\"\n",
    );
    let e = invalid(&text, "17: business[1].widget_key: ");
    assert!(
        e.contains("also the widget key of business \"acme\""),
        "{e}"
    );
}

#[test]
fn allowed_origins() {
    let origin = |o: &str, why: &str| {
        let e = invalid(
            &biz(&format!(
                "allowed_origins = [\"https://shop.example\", {o:?}]"
            )),
            "13: business[0].allowed_origins[1]: ",
        );
        assert!(e.contains(&format!("{o:?} is not an origin: ")), "{e}");
        assert!(e.contains(why), "{o}: {e}");
    };
    origin("https://shop.example/", "no path");
    origin("https://shop.example/cart", "no path");
    origin("shop.example", "scheme://host[:port]");
    origin("ftp://shop.example", "http or https");
    origin("HTTPS://shop.example", "http or https");
    origin("https://Shop.Example", "lower case");
    origin("https://shop.example:443", "default port 443");
    origin("http://shop.example:80", "default port 80");
    origin("https://shop.example:0", "not a port");
    origin("https://shop.example:99999", "not a port");
    origin("https://", "host is empty");
    origin("https://shop_example", "not a host name");
    origin("https://user@shop.example", "user name");
    origin("https://[::g]", "not an IPv6 address");
    let e = invalid(
        &biz("allowed_origins = [\"https://shop.example\",\n  \"https://shop.example\"]"),
        "14: business[0].allowed_origins[1]: ",
    );
    assert!(
        e.ends_with("\"https://shop.example\" is listed twice"),
        "{e}"
    );
    let b = first(&biz(
        "allowed_origins = [\"https://shop.example:8443\", \"http://127.0.0.1:3000\"]",
    ));
    assert_eq!(
        b.allowed_origins,
        ["https://shop.example:8443", "http://127.0.0.1:3000"]
    );
}

#[test]
fn time_zone() {
    let e = invalid(
        &biz("time_zone = \"Mars/Base\""),
        "13: business[0].time_zone: ",
    );
    assert!(
        e.starts_with(
            "/etc/callbridge/cb.toml:13: business[0].time_zone: unknown time zone \"Mars/Base\""
        ),
        "{e}"
    );
    invalid(
        &biz("time_zone = \"\""),
        "13: business[0].time_zone: unknown time zone \"\"",
    );
    for tz in ["UTC", "America/New_York", "Asia/Kolkata"] {
        assert_eq!(first(&biz(&format!("time_zone = {tz:?}"))).time_zone, tz);
    }
    // A time zone alone does not need hours: always open.
    assert_eq!(
        first(&biz("time_zone = \"Europe/Berlin\"")).opening_hours,
        None
    );
}

#[test]
fn hours_and_holidays() {
    let e = invalid(
        &biz("hours = [\n  \"mon-fri 09:00-17:30\",\n  \"mon-fry 10:00-14:00\"]"),
        "15: business[0].hours[1]: ",
    );
    assert!(e.contains("\"fry\" is not a day"), "{e}");
    let e = invalid(
        &biz("hours = [\"mon-fri 17:00-09:00\"]"),
        "13: business[0].hours[0]: ",
    );
    assert!(e.contains("ends before it starts"), "{e}");
    let e = invalid(
        &biz("hours = [\"09:00-17:00\"]"),
        "13: business[0].hours[0]: ",
    );
    assert!(e.contains("days then times"), "{e}");
    let e = invalid(
        &biz("holidays = [\"2026-12-25\", \"2026-02-30\"]"),
        "13: business[0].holidays[1]: ",
    );
    assert!(e.contains("not a date of the calendar"), "{e}");
    invalid(
        &biz("holidays = [\"25.12.2026\"]"),
        "13: business[0].holidays[0]: ",
    );
    // Holidays alone: open 24/7 except on them, in the business's time zone.
    let b = first(&biz(
        "time_zone = \"Asia/Tokyo\"\nholidays = [\"2027-01-01\"]",
    ));
    assert_eq!(
        b.opening_hours,
        Some(OpeningHours::parse("Asia/Tokyo", &[] as &[&str], &["2027-01-01"]).unwrap())
    );
    // All closed: valid, never open.
    let b = first(&biz("hours = [\"daily closed\"]"));
    assert!(b.opening_hours.is_some());
}

#[test]
fn webhook() {
    let e = invalid(
        &biz("webhook_url = \"https://crm.example/hook\""),
        "13: business[0].webhook_url: ",
    );
    assert!(
        e.ends_with("needs webhook_secret (at least 16 characters) to sign what is sent"),
        "{e}"
    );
    invalid(
        &biz("webhook_secret = \"s-acme-0123456789abcdef\""),
        "13: business[0].webhook_secret: has no use without webhook_url",
    );
    let e = invalid(
        &biz("webhook_url = \"https://crm.example/hook\"\nwebhook_secret = \"s-acme\""),
        "14: business[0].webhook_secret: ",
    );
    assert!(
        e.ends_with("a webhook secret needs at least 16 characters; this one has 6"),
        "{e}"
    );
    let secret = "\nwebhook_secret = \"s-acme-0123456789abcdef\"";
    let url = |u: &str, why: &str| {
        let e = invalid(
            &biz(&format!("webhook_url = {u:?}{secret}")),
            "13: business[0].webhook_url: ",
        );
        assert!(
            e.contains(&format!("{u:?} is not an http or https URL: ")),
            "{e}"
        );
        assert!(e.contains(why), "{u}: {e}");
    };
    url("ftp://crm.example/hook", "http or https");
    url("crm.example/hook", "like \"https://crm.example/hook\"");
    url("https:///hook", "host is empty");
    url("https://crm example/hook", "percent-encode");
    url("https://crm.example/hook#x", "fragment");
    url("https://me:pw@crm.example/hook", "no credentials");
    url("https://crm.example:0/hook", "not a port");
    for ok in [
        "http://127.0.0.1:9000/hook",
        "https://crm.example",
        "HTTPS://crm.example/a?b=c",
    ] {
        assert_eq!(
            first(&biz(&format!("webhook_url = {ok:?}{secret}")))
                .webhook_url
                .as_deref(),
            Some(ok)
        );
    }
}

#[test]
fn caller_id() {
    for ok in ["+15550100", "+442079460958", "sales", "acme.support"] {
        assert_eq!(
            first(&biz(&format!("caller_id = {ok:?}")))
                .caller_id
                .as_deref(),
            Some(ok)
        );
    }
    let e = invalid(&biz("caller_id = \"+12\""), "13: business[0].caller_id: ");
    assert!(e.contains("8 to 15 digits"), "{e}");
    let e = invalid(
        &biz("caller_id = \"ACME sales\""),
        "13: business[0].caller_id: ",
    );
    assert!(e.contains("neither an E.164 number"), "{e}");
    invalid(&biz("caller_id = \"\""), "13: business[0].caller_id: ");
}

#[test]
fn default_country() {
    for ok in ["US", "GB", "DE"] {
        assert_eq!(
            first(&biz(&format!("default_country = {ok:?}")))
                .default_country
                .as_deref(),
            Some(ok)
        );
    }
    for bad in ["us", "USA", "U", "1A"] {
        let e = invalid(
            &biz(&format!("default_country = {bad:?}")),
            "13: business[0].default_country: ",
        );
        assert!(e.contains("ISO 3166 alpha-2"), "{e}");
    }
    let e = invalid(
        &biz("default_country = \"XX\""),
        "13: business[0].default_country: ",
    );
    assert!(
        e.contains("not a region the phone number metadata knows"),
        "{e}"
    );
}

#[test]
fn preferred_wait_secs() {
    assert_eq!(
        first(&biz("preferred_wait_secs = 0")).preferred_wait(),
        Duration::ZERO
    );
    assert_eq!(
        first(&biz("preferred_wait_secs = 3600")).preferred_wait(),
        Duration::from_secs(3600)
    );
    invalid(
        &biz("preferred_wait_secs = 3601"),
        "13: business[0].preferred_wait_secs: 3601 is out of range 0..=3600",
    );
    assert_prefix(
        &biz("preferred_wait_secs = -1"),
        "13: business[0].preferred_wait_secs: ",
    );
}

#[test]
fn retry() {
    let r = first(&biz("[business.retry]\nattempts = 1")).retry;
    assert_eq!((r.attempts, r.spacing_secs), (1, 300));
    let r = first(&biz("retry = { attempts = 10, spacing_secs = 86400 }"))
        .retry
        .policy();
    assert_eq!((r.attempts, r.spacing), (10, Duration::from_secs(86400)));
    invalid(
        &biz("[business.retry]\nspacing_secs = 60\nattempts = 0"),
        "15: business[0].retry.attempts: 0 is out of range 1..=10",
    );
    invalid(
        &biz("retry = { attempts = 11 }"),
        "13: business[0].retry.attempts: 11 is out of range 1..=10",
    );
    invalid(
        &biz("[business.retry]\nspacing_secs = 0"),
        "14: business[0].retry.spacing_secs: 0 is out of range 1..=86400",
    );
    let e = assert_prefix(
        &biz("[business.retry]\natempts = 2"),
        "14: business[0].retry.atempts: ",
    );
    assert!(e.contains("unknown field"), "{e}");
}

#[test]
fn limits() {
    let l = first(&biz(
        "[business.limits]\nmax_concurrent_calls = 0\nper_number_per_hour = 10",
    ))
    .rate_limits(&LimitsConfig {
        per_business_per_minute: 99,
        ..LimitsConfig::default()
    });
    assert_eq!(
        (
            l.max_concurrent_calls,
            l.per_number_per_hour,
            l.per_business_per_minute
        ),
        (0, 10, 99),
        "0 turns the cap off; overrides win; the rest comes from [limits]"
    );
    assert_prefix(
        &biz("[business.limits]\nper_ip_per_minute = 1"),
        "14: business[0].limits.per_ip_per_minute: ",
    );
    assert_prefix(
        &biz("[business.limits]\nmax_concurrent_calls = \"50\""),
        "14: business[0].limits.max_concurrent_calls: ",
    );
}

#[test]
fn number_policy() {
    let p = first(&biz(
        "[business.number_policy]\nallowed_country_codes = [44, 49]",
    ))
    .number_policy
    .policy();
    assert_eq!(p.allowed_country_codes, [44, 49]);
    assert!(p.check("+442079460958", None).is_ok());
    assert!(p.check("+12015550123", None).is_err());
    invalid(
        &biz("[business.number_policy]\nallowed_country_codes = [1, 0]"),
        "14: business[0].number_policy.allowed_country_codes[1]: 0 is not a country calling code (1..=999)",
    );
    invalid(
        &biz("number_policy = { allowed_country_codes = [1000] }"),
        "13: business[0].number_policy.allowed_country_codes[0]: 1000 is not a country calling code",
    );
    invalid(
        &biz("[business.number_policy]\nallowed_country_codes = [\n  1,\n  1]"),
        "16: business[0].number_policy.allowed_country_codes[1]: 1 is listed twice",
    );
    assert_prefix(
        &biz("[business.number_policy]\nallowed_regions = [\"US\"]"),
        "14: business[0].number_policy.allowed_regions: ",
    );
}

#[test]
fn a_business_announcement_must_be_a_usable_wav_next_to_the_file() {
    let dir = std::env::temp_dir().join(format!("callbridge-biz-ann-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("prompts")).unwrap();
    // A real 8 kHz mono PCM16 WAV: 160 samples of silence.
    let mut wav = Vec::new();
    let data = 320u32;
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data.to_le_bytes());
    wav.extend_from_slice(&[0; 320]);
    std::fs::write(dir.join("prompts/acme.wav"), &wav).unwrap();
    std::fs::write(dir.join("prompts/bad.wav"), b"RIFF, but not a WAV").unwrap();
    let file = dir.join("cb.toml");
    std::fs::write(&file, biz("announcement = \"prompts/acme.wav\"")).unwrap();
    let c = Config::load(&file).unwrap();
    assert_eq!(
        c.business[0].announcement,
        Some(dir.join("prompts/acme.wav"))
    );
    for (name, what) in [("gone.wav", "cannot read"), ("bad.wav", "bad.wav: ")] {
        std::fs::write(&file, biz(&format!("announcement = \"prompts/{name}\""))).unwrap();
        let e = Config::load(&file).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}:13: business[0].announcement: ",
                file.display()
            )),
            "{e}"
        );
        assert!(e.contains(what), "{e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reservation() {
    use super::super::business::ReservationConfig;
    assert_eq!(first(FULL).reservation, ReservationConfig::AgentFirst);
    for (text, want) in [
        ("agent_first", flows::Reservation::AgentFirst),
        ("customer_first", flows::Reservation::CustomerFirst),
    ] {
        let r = first(&biz(&format!("reservation = {text:?}"))).reservation;
        assert_eq!(flows::Reservation::from(r), want);
    }
    let e = assert_prefix(
        &biz("reservation = \"customer-first\""),
        "13: business[0].reservation: ",
    );
    assert!(
        e.contains("agent_first") && e.contains("customer_first"),
        "{e}"
    );
}
