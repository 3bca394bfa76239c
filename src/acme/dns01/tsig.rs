//! TSIG (RFC 8945): signing a request with the shared key, and checking
//! that the server's response is signed with it too, over the request's MAC,
//! so that an answer to "was the record added?" cannot be forged by whoever
//! sits on the path. HMAC-SHA256/384/512 through ring.
//!
//! The time signed is the system's, not the injected clock's: the server
//! compares it with its own clock, and a test that moves quire's clock must
//! not make every update fail with BADTIME.

use ring::hmac;

use super::wire::{self, CLASS_ANY, Message, Record, TYPE_TSIG, WireError};
use crate::config::{TsigAlgorithm, TsigKey};

/// How far apart the two clocks may be (RFC 8945 section 10 recommends 300s).
pub const FUDGE: u16 = 300;

/// The TSIG error codes a server may answer with (RFC 8945 section 3).
pub const BADSIG: u16 = 16;
pub const BADKEY: u16 = 17;
pub const BADTIME: u16 = 18;

/// A signed request, and its MAC, which the response's signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub bytes: Vec<u8>,
    pub mac: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsigError {
    #[error("the response is not signed")]
    Unsigned,
    #[error("the response is signed with another key (`{0}`)")]
    OtherKey(String),
    #[error("the response is signed with another algorithm (`{0}`)")]
    OtherAlgorithm(String),
    #[error("the response's signature does not match the key")]
    BadMac,
    #[error(
        "the response was signed at {signed} (Unix time), more than {FUDGE}s from this clock's {now}"
    )]
    Time { signed: u64, now: u64 },
    /// The server refused our signature; the code says why.
    #[error("the server answered with TSIG error {0}")]
    Server(u16),
    #[error("the response's TSIG record is malformed: {0}")]
    Wire(#[from] WireError),
}

/// The algorithm's name in the TSIG record.
fn algorithm_name(algorithm: TsigAlgorithm) -> &'static str {
    match algorithm {
        TsigAlgorithm::HmacSha256 => "hmac-sha256",
        TsigAlgorithm::HmacSha384 => "hmac-sha384",
        TsigAlgorithm::HmacSha512 => "hmac-sha512",
    }
}

fn hmac_key(key: &TsigKey) -> hmac::Key {
    let algorithm = match key.algorithm {
        TsigAlgorithm::HmacSha256 => hmac::HMAC_SHA256,
        TsigAlgorithm::HmacSha384 => hmac::HMAC_SHA384,
        TsigAlgorithm::HmacSha512 => hmac::HMAC_SHA512,
    };
    hmac::Key::new(algorithm, key.secret())
}

/// The fields after the message that the MAC covers (section 4.3.3).
struct Variables<'a> {
    key_name: &'a str,
    class: u16,
    ttl: u32,
    algorithm: &'a str,
    time: u64,
    fudge: u16,
    error: u16,
    other: &'a [u8],
}

impl Variables<'_> {
    fn append(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        wire::put_name(out, self.key_name)?;
        out.extend_from_slice(&self.class.to_be_bytes());
        out.extend_from_slice(&self.ttl.to_be_bytes());
        wire::put_name(out, self.algorithm)?;
        out.extend_from_slice(&self.time.to_be_bytes()[2..]);
        out.extend_from_slice(&self.fudge.to_be_bytes());
        out.extend_from_slice(&self.error.to_be_bytes());
        out.extend_from_slice(&(self.other.len() as u16).to_be_bytes());
        out.extend_from_slice(self.other);
        Ok(())
    }
}

/// The variables of a record we sign at `time`.
fn ours(key: &TsigKey, time: u64) -> Variables<'_> {
    Variables {
        key_name: key.name.as_str(),
        class: CLASS_ANY,
        ttl: 0,
        algorithm: algorithm_name(key.algorithm),
        time,
        fudge: FUDGE,
        error: 0,
        other: &[],
    }
}

/// Appends a TSIG record signing `message` at `time` (Unix seconds).
pub fn sign(mut message: Vec<u8>, key: &TsigKey, time: u64) -> Result<Signed, WireError> {
    let mut covered = message.clone();
    ours(key, time).append(&mut covered)?;
    let mac = hmac::sign(&hmac_key(key), &covered).as_ref().to_vec();
    append_record(&mut message, key, time, &mac)?;
    Ok(Signed {
        bytes: message,
        mac,
    })
}

/// Appends the TSIG record carrying `mac` and counts it.
fn append_record(
    message: &mut Vec<u8>,
    key: &TsigKey,
    time: u64,
    mac: &[u8],
) -> Result<(), WireError> {
    let id = wire::u16_at(message, 0)?;
    let additional = wire::u16_at(message, 10)?;
    let mut rdata = Vec::with_capacity(32 + mac.len());
    wire::put_name(&mut rdata, algorithm_name(key.algorithm))?;
    rdata.extend_from_slice(&time.to_be_bytes()[2..]);
    rdata.extend_from_slice(&FUDGE.to_be_bytes());
    rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    rdata.extend_from_slice(mac);
    rdata.extend_from_slice(&id.to_be_bytes());
    rdata.extend_from_slice(&[0, 0, 0, 0]); // no error, no other data
    wire::put_name(message, key.name.as_str())?;
    message.extend_from_slice(&TYPE_TSIG.to_be_bytes());
    message.extend_from_slice(&CLASS_ANY.to_be_bytes());
    message.extend_from_slice(&0u32.to_be_bytes());
    message.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    message.extend_from_slice(&rdata);
    message[10..12].copy_from_slice(&(additional + 1).to_be_bytes());
    Ok(())
}

/// A TSIG record's fields.
struct Fields<'a> {
    algorithm: String,
    time: u64,
    fudge: u16,
    mac: &'a [u8],
    original_id: u16,
    error: u16,
    other: &'a [u8],
}

fn fields<'a>(bytes: &'a [u8], record: &Record) -> Result<Fields<'a>, WireError> {
    let rdata = &bytes[record.rdata.clone()];
    let (algorithm, after) = wire::name_at(bytes, record.rdata.start)?;
    let mut at = after - record.rdata.start;
    let take = |at: &mut usize, n: usize| -> Result<&'a [u8], WireError> {
        let field = rdata.get(*at..*at + n).ok_or(WireError::Short)?;
        *at += n;
        Ok(field)
    };
    let time = take(&mut at, 6)?
        .iter()
        .fold(0u64, |t, &b| (t << 8) | u64::from(b));
    let fudge = wire::u16_at(take(&mut at, 2)?, 0)?;
    let mac_len = wire::u16_at(take(&mut at, 2)?, 0)? as usize;
    let mac = take(&mut at, mac_len)?;
    let original_id = wire::u16_at(take(&mut at, 2)?, 0)?;
    let error = wire::u16_at(take(&mut at, 2)?, 0)?;
    let other_len = wire::u16_at(take(&mut at, 2)?, 0)? as usize;
    let other = take(&mut at, other_len)?;
    Ok(Fields {
        algorithm,
        time,
        fudge,
        mac,
        original_id,
        error,
        other,
    })
}

/// Checks that `bytes` (read as `message`) is the server's answer to the
/// request whose MAC was `request_mac`, signed with `key`, at a time within
/// the fudge of `now` (Unix seconds).
pub fn verify(
    bytes: &[u8],
    message: &Message,
    request_mac: &[u8],
    key: &TsigKey,
    now: u64,
) -> Result<(), TsigError> {
    // Section 5.2: the TSIG record is the last one, or there is none.
    let record = message
        .additional
        .last()
        .filter(|r| r.rtype == TYPE_TSIG)
        .ok_or(TsigError::Unsigned)?;
    let f = fields(bytes, record)?;
    if record.owner != key.name.as_str() {
        return Err(TsigError::OtherKey(record.owner.clone()));
    }
    if f.algorithm != algorithm_name(key.algorithm) {
        return Err(TsigError::OtherAlgorithm(f.algorithm));
    }
    // BADSIG and BADKEY answers carry no MAC to check.
    if f.error != 0 {
        return Err(TsigError::Server(f.error));
    }
    let mut covered = Vec::with_capacity(bytes.len() + request_mac.len() + 64);
    covered.extend_from_slice(&(request_mac.len() as u16).to_be_bytes());
    covered.extend_from_slice(request_mac);
    let unsigned = covered.len();
    covered.extend_from_slice(&bytes[..record.start]);
    covered[unsigned..unsigned + 2].copy_from_slice(&f.original_id.to_be_bytes());
    let additional = wire::u16_at(bytes, 10)?.saturating_sub(1);
    covered[unsigned + 10..unsigned + 12].copy_from_slice(&additional.to_be_bytes());
    Variables {
        key_name: &record.owner,
        class: record.class,
        ttl: record.ttl,
        algorithm: &f.algorithm,
        time: f.time,
        fudge: f.fudge,
        error: f.error,
        other: f.other,
    }
    .append(&mut covered)?;
    hmac::verify(&hmac_key(key), &covered, f.mac).map_err(|_| TsigError::BadMac)?;
    if now.abs_diff(f.time) > u64::from(f.fudge) {
        return Err(TsigError::Time {
            signed: f.time,
            now,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretSource;

    fn key(secret: &[u8]) -> TsigKey {
        TsigKey::new(
            "quire-key".parse().unwrap(),
            TsigAlgorithm::HmacSha256,
            secret.to_vec(),
            SecretSource::Env,
        )
    }

    /// What BIND's `dig -y hmac-sha256:quire-key:<secret>` sent for
    /// `dig @server example.test SOA +norecurse +noedns +nocookie +noad`
    /// (id 0xbdeb, signed at 1796019987): another implementation's signature,
    /// byte for byte.
    const DIG_REQUEST: &str = concat!(
        "bdeb00000001000000000001076578616d706c6504746573740000060001097175697265",
        "2d6b65790000fa00ff00000000003d0b686d61632d7368613235360000006b0d1713012c",
        "002026711691e2a17b32bfacd58a5aeeaf3f244c21a2a961c123dff663811660ee12bdeb00000000"
    );
    const DIG_SECRET: &[u8] = b"quire-tsig-known-answer-secret!!";

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn a_request_is_signed_as_bind_signs_it() {
        let from_dig = unhex(DIG_REQUEST);
        let message = wire::parse(&from_dig).unwrap();
        let tsig = message.additional.last().unwrap();
        let mut unsigned = from_dig[..tsig.start].to_vec();
        let additional = wire::u16_at(&from_dig, 10).unwrap() - 1;
        unsigned[10..12].copy_from_slice(&additional.to_be_bytes());
        let time = fields(&from_dig, tsig).unwrap().time;
        let signed = sign(unsigned, &key(DIG_SECRET), time).unwrap();
        assert_eq!(signed.bytes, from_dig);
    }

    /// A response as the server signs it: over the request's MAC, then
    /// the response, then the variables (section 4.3.1).
    fn signed_response(request: &Signed, key: &TsigKey, time: u64) -> Vec<u8> {
        let mut response = wire::query(0x4242, "example.test", wire::TYPE_SOA).unwrap();
        response[2] |= 0x80;
        let mut covered = (request.mac.len() as u16).to_be_bytes().to_vec();
        covered.extend_from_slice(&request.mac);
        covered.extend_from_slice(&response);
        ours(key, time).append(&mut covered).unwrap();
        let mac = hmac::sign(&hmac_key(key), &covered);
        append_record(&mut response, key, time, mac.as_ref()).unwrap();
        response
    }

    #[test]
    fn a_signed_response_verifies_and_a_tampered_one_does_not() {
        let key = key(&[7; 32]);
        let now = 1_767_225_600;
        let query = wire::query(0x4242, "example.test", wire::TYPE_SOA).unwrap();
        let request = sign(query, &key, now).unwrap();
        let response = signed_response(&request, &key, now);
        let check = |bytes: &[u8], key: &TsigKey, now: u64| {
            verify(bytes, &wire::parse(bytes).unwrap(), &request.mac, key, now)
        };
        assert_eq!(check(&response, &key, now), Ok(()));
        assert_eq!(check(&response, &key, now + 300), Ok(()));

        let mut tampered = response.clone();
        tampered[3] ^= 0x03; // the RCODE
        assert_eq!(check(&tampered, &key, now), Err(TsigError::BadMac));
        let other = super::tests::key(&[8; 32]);
        assert_eq!(check(&response, &other, now), Err(TsigError::BadMac));
        assert_eq!(
            check(&response, &key, now + 301),
            Err(TsigError::Time {
                signed: now,
                now: now + 301
            })
        );
        let unsigned = wire::query(0x4242, "example.test", wire::TYPE_SOA).unwrap();
        assert_eq!(check(&unsigned, &key, now), Err(TsigError::Unsigned));
        // Another request's MAC: a replayed answer.
        let again = sign(
            wire::query(0x4242, "example.test", wire::TYPE_SOA).unwrap(),
            &key,
            now + 1,
        )
        .unwrap();
        let replayed = wire::parse(&response).unwrap();
        assert_eq!(
            verify(&response, &replayed, &again.mac, &key, now),
            Err(TsigError::BadMac)
        );
    }
}
