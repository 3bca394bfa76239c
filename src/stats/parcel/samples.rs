//! Parcels for the tests of the parcel and of the outbox.

use super::*;

pub fn view(
    hour: u32,
    kind: ViewKind,
    path: &str,
    referrer: Option<&str>,
    visitor: Option<u64>,
) -> View {
    View {
        hour: Hour(hour),
        kind,
        path: path.into(),
        referrer: referrer.map(Into::into),
        visitor,
    }
}

pub fn parcel() -> Parcel {
    let mut views = vec![
        (
            view(493_000, ViewKind::Page, "/", Some("news.example"), Some(7)),
            3,
        ),
        (
            view(493_001, ViewKind::Page, "/é/", None, Some(u64::MAX)),
            1,
        ),
        (view(493_001, ViewKind::Feed, "/atom.xml", None, Some(9)), 2),
        (
            view(493_001, ViewKind::NotFound, "/wp-login.php", None, None),
            40,
        ),
        (view(493_002, ViewKind::Bot, "", None, None), 5),
    ];
    for i in 0..1000 {
        views.push((view(493_002, ViewKind::Page, "/", None, Some(i)), 1));
    }
    Parcel::new(views, 12, vec![(Day(20_541), [4; 16])])
}

/// The views of [`parcel`] in named parts: two batches, the second
/// also carried by two earlier parcels, and one of views lost.
pub fn named() -> Parcel {
    let Parcel { mut parts, salts } = parcel();
    let mut views = parts.remove(0).views;
    views.sort_by_key(|(v, n)| (v.hour, v.visitor, *n));
    let later = views.split_off(views.len() / 3);
    let parts = vec![
        Part::new(Some(7), Vec::new(), views, 2),
        Part::new(Some(u64::MAX), vec![[1; 32], [2; 32]], later, 0),
        Part::new(None, vec![[2; 32]], [], 10),
    ];
    Parcel { parts, salts }
}

/// The same parcel, whatever order each part's views were listed in.
pub fn sorted(mut parcel: Parcel) -> Parcel {
    for part in &mut parcel.parts {
        part.views
            .sort_by_key(|(v, n)| (v.hour, v.path.clone(), v.referrer.clone(), v.visitor, *n));
    }
    parcel
}
