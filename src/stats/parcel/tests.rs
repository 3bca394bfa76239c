//! The parcel's encoding: what does not fit, old parcels, bad bytes.

use super::samples::{named, parcel, sorted, view};
use super::*;
use crate::stats::outbox::{ROOM, SIZE};

#[test]
fn a_parcel_too_large_keeps_the_most_repeated_views_and_counts_the_rest_as_dropped() {
    let parcel = parcel();
    let (full, _) = parcel.encode(SIZE);
    let (payload, folded) = parcel.encode(full.len() / 2);
    assert!(payload.len() <= full.len() / 2);
    assert!(folded > 0 && folded < parcel.count());
    let read = Parcel::decode(&payload).unwrap();
    assert_eq!(
        read.count() + folded,
        parcel.count(),
        "every view accounted for"
    );
    assert_eq!(read.dropped(), parcel.dropped() + folded);
    assert!(
        read.views()
            .any(|(v, n)| v.kind == ViewKind::NotFound && n == 40)
    );
}

#[test]
fn a_full_buffer_of_readers_of_a_few_pages_fits_whole() {
    // 200,000 distinct readers of a few pages, each with a referrer.
    let views = (0..200_000u64).map(|i| {
        let path = format!("/posts/{}/", i % 50);
        let referrer = format!("site{}.example", i % 100);
        (
            view(
                493_000 + (i % 3) as u32,
                ViewKind::Page,
                &path,
                Some(&referrer),
                Some(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            ),
            1,
        )
    });
    let parcel = Parcel::new(views, 0, vec![(Day(20_541), [4; 16])]);
    let (payload, folded) = parcel.encode(ROOM);
    assert_eq!(folded, 0, "{} bytes", payload.len());
}

#[test]
fn the_waiting_buffers_worst_case_keeps_what_fits_and_counts_the_rest_as_dropped() {
    // A full buffer of the costliest views: each reader distinct, each
    // from its own longest referrer host.
    let views = (0..200_000u64).map(|i| {
        let referrer = format!("{i:0>253}");
        (
            view(
                493_000,
                ViewKind::Page,
                "/",
                Some(&referrer),
                Some(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            ),
            1,
        )
    });
    let parcel = Parcel::new(views, 0, vec![(Day(20_541), [4; 16])]);
    let room = ROOM;
    let (payload, folded) = parcel.encode(room);
    assert!(payload.len() <= room);
    let kept = Parcel::decode(&payload).unwrap();
    assert_eq!(kept.count() + folded, 200_000, "every view accounted for");
    assert_eq!(kept.dropped(), folded);
    assert!(kept.count() > 15_000, "{} kept", kept.count());
}

#[test]
fn a_parcel_naming_more_pages_than_its_last_bytes_reads_back() {
    let views = (0..1000).map(|i| {
        let path = format!("/junk/{i}");
        (view(493_000, ViewKind::NotFound, &path, None, None), 1)
    });
    let parcel = Parcel::new(views, 0, Vec::new());
    let (payload, _) = parcel.encode(SIZE);
    assert_eq!(sorted(Parcel::decode(&payload).unwrap()), sorted(parcel));
}

#[test]
fn named_parts_read_back_each_with_its_own_views() {
    let parcel = named();
    let (payload, folded) = parcel.encode(SIZE);
    assert_eq!(folded, 0);
    assert_eq!(sorted(Parcel::decode(&payload).unwrap()), sorted(parcel));
}

#[test]
fn views_that_do_not_fit_are_counted_as_dropped_in_their_own_part() {
    let parcel = named();
    let (full, _) = parcel.encode(SIZE);
    let (payload, folded) = parcel.encode(full.len() * 2 / 3);
    assert!(payload.len() <= full.len() * 2 / 3);
    assert!(folded > 0);
    let read = Parcel::decode(&payload).unwrap();
    assert_eq!(read.parts.len(), parcel.parts.len());
    for (read, part) in read.parts.iter().zip(&parcel.parts) {
        assert_eq!((read.batch, &read.parcels), (part.batch, &part.parcels));
        assert_eq!(read.count() + read.dropped, part.count() + part.dropped);
    }
    assert_eq!(read.count() + folded, parcel.count());
}

#[test]
fn names_past_half_the_room_give_way_oldest_first_counted_as_dropped() {
    let parts: Vec<Part> = (0..1000)
        .map(|seq| {
            let reader = view(493_000, ViewKind::Page, "/", None, Some(seq));
            Part::new(Some(seq), vec![[3; 32]], [(reader, 1)], 1)
        })
        .collect();
    let parcel = Parcel {
        parts,
        salts: Vec::new(),
    };
    let room = 8 * 1024;
    let (payload, folded) = parcel.encode(room);
    assert!(payload.len() <= room, "{} bytes", payload.len());
    let read = Parcel::decode(&payload).unwrap();
    let newest = read.parts.last().unwrap().batch;
    assert_eq!(newest, Some(999), "the newest parts keep their names");
    let oldest = &read.parts[0];
    assert_eq!((oldest.batch, oldest.count()), (None, 0));
    assert!(oldest.dropped >= 2 * (1000 - read.parts.len() as u64 + 1));
    assert_eq!(read.count() + folded, 1000, "every view accounted for");
    assert_eq!(read.dropped(), 1000 + folded);
}

#[test]
fn parts_that_do_not_match_the_views_are_refused() {
    let (payload, _) = named().encode(SIZE);
    // The last byte: how many views the last part has (none).
    let mut claims_more = payload.clone();
    *claims_more.last_mut().unwrap() = 1;
    assert_eq!(Parcel::decode(&claims_more), Err(ParcelError::BadPart));
}

#[test]
fn a_parcel_written_before_parts_had_names_still_reads() {
    // One salt, one page read twice by visitor 7, three dropped: the
    // bytes an outbox held before parcels named their parts.
    let mut old = vec![0x01, 0xbd, 0xa0, 0x01];
    old.extend_from_slice(&[4; 16]);
    old.extend_from_slice(&[0xc8, 0x8b, 0x1e, 0x01, 0x01, b'/', 0x01, 0x00, 0x08, 0x00]);
    old.extend_from_slice(&7u64.to_le_bytes());
    old.extend_from_slice(&[0x02, 0x03]);
    let read = Parcel::decode(&old).unwrap();
    let expected = Parcel::new(
        [(view(493_000, ViewKind::Page, "/", None, Some(7)), 2)],
        3,
        vec![(Day(20_541), [4; 16])],
    );
    assert_eq!(read, expected);
    assert_eq!(
        read.encode(SIZE).0,
        old,
        "a parcel of no named part is written as before"
    );
}

#[test]
fn bad_payloads_are_refused_not_misread() {
    let (payload, _) = parcel().encode(SIZE);
    assert!(Parcel::decode(&payload[..payload.len() - 1]).is_err());
    let mut longer = payload.clone();
    longer.push(0);
    assert!(Parcel::decode(&longer).is_err());
    assert!(Parcel::decode(&[0xff; 16]).is_err());
}
