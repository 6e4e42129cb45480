//! Number policy: which customer numbers a business lets its callback form ring.
//!
//! [`crate::Target::parse`] only checks the shape of an E.164 number. A callback form lets
//! anyone make our carrier ring the number they type, so before a call is accepted the
//! business's [`NumberPolicy`] checks it against libphonenumber's metadata (the
//! [`phonenumber`] crate, which stays behind this module):
//!
//! 1. the text may hold digits, a leading `+`, spaces and `- . ( ) /` (so `+44 (0)20 7946 0958`
//!    and `(201) 555-0123` are fine; letters, `ext.` and `*#` are not);
//! 2. without a leading `+` (or the region's international prefix, like `00`), the number is
//!    read as a national number of `default_region` (an ISO 3166 code such as `"GB"`);
//! 3. it must be a valid number of its country (a known range of the right length);
//! 4. its country calling code and region must be allowed (empty lists allow all; note that
//!    `+1` covers the USA, Canada and much of the Caribbean, so use
//!    [`NumberPolicy::allowed_regions`] to keep to `US`/`CA`);
//! 5. its type must not be refused: by default premium-rate, shared-cost, personal
//!    numbers (UK 070, DE 0700: revenue-sharing, a known fraud route), UAN (company numbers
//!    whose tariff the business does not control, e.g. DE 018x), voicemail access, pagers,
//!    emergency and short codes. Fixed-line, mobile, toll-free and VoIP numbers pass.
//!
//! The answer is a [`NormalizedNumber`] in strict E.164 (`+442079460958`), or a
//! [`NumberRefusal`] whose `Display` is a sentence fit to show the visitor.
//!
//! Fake test numbers such as `+15550001` pass [`crate::Target::parse`] but not this policy;
//! the policy is an extra, per-business check, applied where the business has one.

use std::fmt;
use std::str::FromStr;

use phonenumber::{country, metadata::DATABASE, Mode, PhoneNumber, Type};
use serde::{Deserialize, Serialize};

use crate::Target;

/// The longest input accepted (characters, punctuation included).
pub const MAX_INPUT_LEN: usize = 40;

/// What kind of line a number is, per libphonenumber's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NumberKind {
    /// A landline.
    FixedLine,
    /// A mobile phone.
    Mobile,
    /// Either; the number alone does not tell (e.g. in the USA).
    FixedLineOrMobile,
    /// Freephone (free for the caller).
    TollFree,
    /// Premium rate: the caller pays a surcharge shared with the line's owner.
    PremiumRate,
    /// Shared cost: the caller pays part of the cost, above a normal call.
    SharedCost,
    /// A personal "follow-me" number (UK 070, DE 0700), often revenue-sharing.
    PersonalNumber,
    /// A voice-over-IP number.
    Voip,
    /// A pager.
    Pager,
    /// A universal access (company) number, with a tariff set by its owner's plan.
    Uan,
    /// A voicemail access number.
    Voicemail,
    /// An emergency number.
    Emergency,
    /// A short code.
    ShortCode,
    /// A type libphonenumber knows but no policy needs to tell apart (standard rate, carrier
    /// specific, not reachable from abroad).
    Other,
}

impl NumberKind {
    /// The contract name (`"premium_rate"`, …), as in serde.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FixedLine => "fixed_line",
            Self::Mobile => "mobile",
            Self::FixedLineOrMobile => "fixed_line_or_mobile",
            Self::TollFree => "toll_free",
            Self::PremiumRate => "premium_rate",
            Self::SharedCost => "shared_cost",
            Self::PersonalNumber => "personal_number",
            Self::Voip => "voip",
            Self::Pager => "pager",
            Self::Uan => "uan",
            Self::Voicemail => "voicemail",
            Self::Emergency => "emergency",
            Self::ShortCode => "short_code",
            Self::Other => "other",
        }
    }

    /// The plural noun used in refusals, e.g. `"premium-rate numbers"`.
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::FixedLine => "landline numbers",
            Self::Mobile => "mobile numbers",
            Self::FixedLineOrMobile => "landline and mobile numbers",
            Self::TollFree => "toll-free numbers",
            Self::PremiumRate => "premium-rate numbers",
            Self::SharedCost => "shared-cost numbers",
            Self::PersonalNumber => "personal numbers",
            Self::Voip => "internet telephony numbers",
            Self::Pager => "pager numbers",
            Self::Uan => "company (universal access) numbers",
            Self::Voicemail => "voicemail access numbers",
            Self::Emergency => "emergency numbers",
            Self::ShortCode => "short codes",
            Self::Other => "special service numbers",
        }
    }

    /// `None` for [`Type::Unknown`] (no known range: not a valid number).
    const fn from_type(t: Type) -> Option<Self> {
        Some(match t {
            Type::FixedLine => Self::FixedLine,
            Type::Mobile => Self::Mobile,
            Type::FixedLineOrMobile => Self::FixedLineOrMobile,
            Type::TollFree => Self::TollFree,
            Type::PremiumRate => Self::PremiumRate,
            Type::SharedCost => Self::SharedCost,
            Type::PersonalNumber => Self::PersonalNumber,
            Type::Voip => Self::Voip,
            Type::Pager => Self::Pager,
            Type::Uan => Self::Uan,
            Type::Emergency => Self::Emergency,
            Type::Voicemail => Self::Voicemail,
            Type::ShortCode => Self::ShortCode,
            Type::StandardRate | Type::Carrier | Type::NoInternational => Self::Other,
            Type::Unknown => return None,
        })
    }
}

impl fmt::Display for NumberKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a number is refused. `Display` gives a sentence for the visitor. A refusal is an
/// expected answer about the input, not a fault, so it is its own type rather than a
/// [`crate::Error`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NumberRefusal {
    /// Nothing but blanks.
    #[error("please enter a phone number")]
    Empty,
    /// A character that has no place in a phone number.
    #[error("a phone number may contain only digits, spaces and + - . ( ) /, not {0:?}")]
    BadCharacter(char),
    /// Longer than [`MAX_INPUT_LEN`] characters, or too many or too few digits.
    #[error("that is too long or too short to be a phone number")]
    BadLength,
    /// No `+` and no default region to read a national number with.
    #[error(
        "please enter the number in international format, starting with + and the country code"
    )]
    NoCountryCode,
    /// The default region given by the business is not an ISO 3166 code known to the
    /// metadata.
    #[error("{0:?} is not a known region code")]
    UnknownRegion(String),
    /// Not readable as a phone number, or not a valid number of its country.
    #[error("that is not a valid phone number")]
    Invalid,
    /// The country calling code is not in [`NumberPolicy::allowed_country_codes`].
    #[error("numbers with the country code +{0} cannot be called back")]
    CountryNotAllowed(u16),
    /// The number's region is not in [`NumberPolicy::allowed_regions`].
    #[error("numbers in {0} cannot be called back")]
    RegionNotAllowed(String),
    /// The number's type is in [`NumberPolicy::refuse_types`].
    #[error("{} cannot be called back", .0.describe())]
    RefusedType(NumberKind),
}

/// A number that passed a [`NumberPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NormalizedNumber {
    e164: String,
    country_code: u16,
    region: Option<String>,
    kind: NumberKind,
}

impl NormalizedNumber {
    /// Strict E.164: `+` and digits only, e.g. `"+442079460958"`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.e164
    }

    /// The country calling code, e.g. 44.
    #[must_use]
    pub const fn country_code(&self) -> u16 {
        self.country_code
    }

    /// The ISO 3166 region, e.g. `"GB"` (none for non-geographic codes such as +800).
    #[must_use]
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The line type.
    #[must_use]
    pub const fn kind(&self) -> NumberKind {
        self.kind
    }

    /// The number as a call [`Target`].
    #[must_use]
    pub fn to_target(&self) -> Target {
        Target::Tel(self.e164.clone())
    }
}

impl fmt::Display for NormalizedNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

/// A business's rules for customer numbers (configuration). See the module docs for the
/// order of the checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NumberPolicy {
    /// Country calling codes that may be called, e.g. `[44, 49]`; empty allows all.
    pub allowed_country_codes: Vec<u16>,
    /// ISO 3166 regions that may be called, e.g. `["US", "CA"]` (case-insensitive); empty
    /// allows all.
    pub allowed_regions: Vec<String>,
    /// Number types never called (default: see [`NumberPolicy::DEFAULT_REFUSED`]).
    pub refuse_types: Vec<NumberKind>,
}

impl NumberPolicy {
    /// The types refused by default.
    pub const DEFAULT_REFUSED: [NumberKind; 8] = [
        NumberKind::PremiumRate,
        NumberKind::SharedCost,
        NumberKind::PersonalNumber,
        NumberKind::Uan,
        NumberKind::Voicemail,
        NumberKind::Pager,
        NumberKind::Emergency,
        NumberKind::ShortCode,
    ];

    /// Checks `input` and returns it in E.164. `default_region` (ISO 3166, e.g. `"GB"`) reads
    /// numbers written without a country code.
    ///
    /// # Errors
    /// A [`NumberRefusal`] naming the first rule the number fails.
    pub fn check(
        &self,
        input: &str,
        default_region: Option<&str>,
    ) -> Result<NormalizedNumber, NumberRefusal> {
        let number = parse(input, default_region)?;
        let code = number.code().value();
        let region = number.country().id().map(|id| id.as_ref().to_owned());
        if !self.allowed_country_codes.is_empty() && !self.allowed_country_codes.contains(&code) {
            return Err(NumberRefusal::CountryNotAllowed(code));
        }
        if !self.allowed_regions.is_empty() {
            let allowed = region.as_deref().is_some_and(|r| {
                self.allowed_regions
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(r))
            });
            if !allowed {
                return Err(NumberRefusal::RegionNotAllowed(
                    region.unwrap_or_else(|| format!("+{code}")),
                ));
            }
        }
        let kind =
            NumberKind::from_type(number.number_type(&DATABASE)).ok_or(NumberRefusal::Invalid)?;
        if self.refuse_types.contains(&kind) {
            return Err(NumberRefusal::RefusedType(kind));
        }
        Ok(NormalizedNumber {
            e164: number.format().mode(Mode::E164).to_string(),
            country_code: code,
            region,
            kind,
        })
    }
}

impl Default for NumberPolicy {
    fn default() -> Self {
        Self {
            allowed_country_codes: Vec::new(),
            allowed_regions: Vec::new(),
            refuse_types: Self::DEFAULT_REFUSED.to_vec(),
        }
    }
}

/// Steps 1–3 of the module docs: characters, then libphonenumber, then validity.
fn parse(input: &str, default_region: Option<&str>) -> Result<PhoneNumber, NumberRefusal> {
    let input = input.trim();
    if input.is_empty() {
        return Err(NumberRefusal::Empty);
    }
    if input.chars().count() > MAX_INPUT_LEN {
        return Err(NumberRefusal::BadLength);
    }
    let mut cleaned = String::with_capacity(input.len());
    for (i, c) in input.char_indices() {
        match c {
            '0'..='9' => cleaned.push(c),
            '+' if i == 0 => cleaned.push(c),
            ' ' | '-' | '.' | '/' | '(' | ')' => {}
            _ => return Err(NumberRefusal::BadCharacter(c)),
        }
    }
    // "+44 (0)20 …": the national trunk prefix written after the country code.
    let cleaned = if cleaned.starts_with('+') && input.contains("(0)") {
        cleaned_without_trunk_zero(input)
    } else {
        cleaned
    };
    let digits = cleaned.trim_start_matches('+').len();
    if !(3..=17).contains(&digits) {
        return Err(NumberRefusal::BadLength);
    }
    let region = match default_region {
        Some(r) => Some(
            country::Id::from_str(&r.to_ascii_uppercase())
                .map_err(|_| NumberRefusal::UnknownRegion(r.to_owned()))?,
        ),
        None => None,
    };
    if region.is_none() && !cleaned.starts_with('+') {
        return Err(NumberRefusal::NoCountryCode);
    }
    let number = phonenumber::parse(region, &cleaned).map_err(|_| NumberRefusal::Invalid)?;
    if number.extension().is_some() || !phonenumber::is_valid(&number) {
        return Err(NumberRefusal::Invalid);
    }
    Ok(number)
}

/// `input` (already checked to hold only allowed characters) as `+` and digits, without a
/// `(0)` group.
fn cleaned_without_trunk_zero(input: &str) -> String {
    input
        .replacen("(0)", "", 1)
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '+')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(policy: &NumberPolicy, input: &str, region: Option<&str>) -> NormalizedNumber {
        policy
            .check(input, region)
            .unwrap_or_else(|e| panic!("{input}: {e}"))
    }

    #[test]
    fn geographic_and_mobile_numbers_are_normalized() {
        let p = NumberPolicy::default();
        for (input, region, e164, kind) in [
            (
                "+44 20 7946 0958",
                None,
                "+442079460958",
                NumberKind::FixedLine,
            ),
            (
                "+44 (0)20 7946 0958",
                None,
                "+442079460958",
                NumberKind::FixedLine,
            ),
            (
                "020 7946 0958",
                Some("GB"),
                "+442079460958",
                NumberKind::FixedLine,
            ),
            (
                "07400 123456",
                Some("gb"),
                "+447400123456",
                NumberKind::Mobile,
            ),
            ("+44.7400.123456", None, "+447400123456", NumberKind::Mobile),
            (
                "(201) 555-0123",
                Some("US"),
                "+12015550123",
                NumberKind::FixedLineOrMobile,
            ),
            (
                "+1 201-555-0123",
                Some("DE"),
                "+12015550123",
                NumberKind::FixedLineOrMobile,
            ),
            (
                "030 123456",
                Some("DE"),
                "+4930123456",
                NumberKind::FixedLine,
            ),
            ("+49 30/123456", None, "+4930123456", NumberKind::FixedLine),
            (
                "0151 23456789",
                Some("DE"),
                "+4915123456789",
                NumberKind::Mobile,
            ),
            (
                "0044 20 7946 0958",
                Some("DE"),
                "+442079460958",
                NumberKind::FixedLine,
            ),
            (
                "+1 800 234 5678",
                None,
                "+18002345678",
                NumberKind::TollFree,
            ),
        ] {
            let n = ok(&p, input, region);
            assert_eq!((n.as_str(), n.kind()), (e164, kind), "{input}");
            assert_eq!(n.to_target(), Target::parse(e164).unwrap());
        }
        let n = ok(&p, "+442079460958", None);
        assert_eq!((n.country_code(), n.region()), (44, Some("GB")));
        assert_eq!(n.to_string(), "+442079460958");
    }

    #[test]
    fn premium_rate_numbers_are_refused() {
        let p = NumberPolicy::default();
        let premium = Err(NumberRefusal::RefusedType(NumberKind::PremiumRate));
        // UK 09xx, US 1-900, German 0900.
        assert_eq!(p.check("0909 879 0000", Some("GB")).map(|_| ()), premium);
        assert_eq!(p.check("+44 901 234 5678", None).map(|_| ()), premium);
        assert_eq!(p.check("+1 900 234 5678", None).map(|_| ()), premium);
        assert_eq!(p.check("1-900-234-5678", Some("US")).map(|_| ()), premium);
        assert_eq!(p.check("0900 1 234567", Some("DE")).map(|_| ()), premium);
        assert_eq!(
            p.check("+49 900 1234567", None).unwrap_err().to_string(),
            "premium-rate numbers cannot be called back"
        );
    }

    #[test]
    fn other_special_services_are_refused_by_default() {
        let p = NumberPolicy::default();
        for (input, kind) in [
            ("+49 180 12345", NumberKind::SharedCost),
            ("+44 70 1234 5678", NumberKind::PersonalNumber),
            ("+49 700 12345678", NumberKind::PersonalNumber),
            ("+1 500 234 5678", NumberKind::PersonalNumber),
            ("+49 1850 0123456", NumberKind::Uan),
            ("+49 1779 9123 4567", NumberKind::Voicemail),
            ("+49 1641 2345", NumberKind::Pager),
        ] {
            assert_eq!(
                p.check(input, None),
                Err(NumberRefusal::RefusedType(kind)),
                "{input}"
            );
        }
        // A policy may let them through.
        let lax = NumberPolicy {
            refuse_types: vec![NumberKind::PremiumRate],
            ..NumberPolicy::default()
        };
        assert_eq!(
            ok(&lax, "+49 180 12345", None).kind(),
            NumberKind::SharedCost
        );
        assert!(lax.check("+49 900 1234567", None).is_err());
    }

    #[test]
    fn country_and_region_allowlists() {
        let p = NumberPolicy {
            allowed_country_codes: vec![44, 49],
            ..NumberPolicy::default()
        };
        ok(&p, "+44 20 7946 0958", None);
        ok(&p, "+49 30 123456", None);
        assert_eq!(
            p.check("+1 201 555 0123", None),
            Err(NumberRefusal::CountryNotAllowed(1))
        );
        assert_eq!(
            p.check("+1 201 555 0123", None).unwrap_err().to_string(),
            "numbers with the country code +1 cannot be called back"
        );
        // +1 is shared: Jamaica (876) is not the USA.
        let us = NumberPolicy {
            allowed_regions: vec!["us".into(), "CA".into()],
            ..NumberPolicy::default()
        };
        ok(&us, "+1 201 555 0123", None);
        ok(&us, "+1 416 555 0123", None);
        assert_eq!(
            us.check("+1 876 520 1234", None),
            Err(NumberRefusal::RegionNotAllowed("JM".into()))
        );
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let p = NumberPolicy::default();
        for (input, region, refusal) in [
            ("", None, NumberRefusal::Empty),
            ("   ", Some("GB"), NumberRefusal::Empty),
            ("call me", None, NumberRefusal::BadCharacter('c')),
            (
                "+44 20 7946 0958 ext. 12",
                None,
                NumberRefusal::BadCharacter('e'),
            ),
            (
                "1-800-FLOWERS",
                Some("US"),
                NumberRefusal::BadCharacter('F'),
            ),
            ("*21#", None, NumberRefusal::BadCharacter('*')),
            ("44+207946", None, NumberRefusal::BadCharacter('+')),
            ("+1", None, NumberRefusal::BadLength),
            ("+123456789012345678", None, NumberRefusal::BadLength),
            (&"1 ".repeat(30), Some("US"), NumberRefusal::BadLength),
            ("020 7946 0958", None, NumberRefusal::NoCountryCode),
            (
                "020 7946 0958",
                Some("XX"),
                NumberRefusal::UnknownRegion("XX".into()),
            ),
            ("+44 20 7946", None, NumberRefusal::Invalid),
            ("+999 1234 5678", None, NumberRefusal::Invalid),
            ("+1 555 0001", None, NumberRefusal::Invalid),
            ("+15550001", None, NumberRefusal::Invalid),
            ("+49 0000000", None, NumberRefusal::Invalid),
        ] {
            assert_eq!(p.check(input, region), Err(refusal), "{input:?}");
        }
        assert_eq!(
            NumberRefusal::BadCharacter('x').to_string(),
            "a phone number may contain only digits, spaces and + - . ( ) /, not 'x'"
        );
        assert_eq!(
            NumberRefusal::NoCountryCode.to_string(),
            "please enter the number in international format, starting with + and the country code"
        );
    }

    #[test]
    fn policy_reads_from_config() {
        let p: NumberPolicy = serde_json::from_str(
            r#"{"allowed_country_codes":[44],"refuse_types":["premium_rate","uan"]}"#,
        )
        .unwrap();
        assert_eq!(p.allowed_country_codes, vec![44]);
        assert_eq!(
            p.refuse_types,
            vec![NumberKind::PremiumRate, NumberKind::Uan]
        );
        let d: NumberPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(d, NumberPolicy::default());
        assert!(serde_json::from_str::<NumberPolicy>(r#"{"refuse":[]}"#).is_err());
    }
}
