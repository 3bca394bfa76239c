//! A logical copy of a statistics store, for `quire backup`: every key and
//! value, in order, independent of the engine's files (which cannot be copied
//! safely while the store is open). Format: a magic line, then for each entry
//! a big-endian u32 key length, the key, a u32 value length, the value.

use super::store::{Batch, StatsStore, StatsStoreError};

const MAGIC: &[u8] = b"quire stats dump 1\n";
/// Entries read and written per batch.
const CHUNK: usize = 10_000;

pub fn export(store: &dyn StatsStore) -> Result<Vec<u8>, StatsStoreError> {
    let mut out = MAGIC.to_vec();
    let mut start = Vec::new();
    loop {
        let entries = store.range(&start, &[0xff; 8], CHUNK)?;
        let Some((last, _)) = entries.last() else {
            return Ok(out);
        };
        start = last.clone();
        start.push(0);
        for (key, value) in &entries {
            for part in [key, value] {
                out.extend_from_slice(&(part.len() as u32).to_be_bytes());
                out.extend_from_slice(part);
            }
        }
    }
}

/// Writes a dump into `store`. Returns the number of entries.
pub fn import(store: &dyn StatsStore, dump: &[u8]) -> Result<usize, StatsStoreError> {
    let corrupt = |what: &str| StatsStoreError::Corrupt(format!("the statistics dump {what}"));
    let mut rest = dump
        .strip_prefix(MAGIC)
        .ok_or_else(|| corrupt("does not start with its header"))?;
    let take = |rest: &mut &[u8]| -> Result<Vec<u8>, StatsStoreError> {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("is cut short"))?;
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err(corrupt("is cut short"));
        }
        let (part, tail) = tail.split_at(len);
        *rest = tail;
        Ok(part.to_vec())
    };
    let mut batch = Batch::default();
    let mut count = 0;
    while !rest.is_empty() {
        let key = take(&mut rest)?;
        let value = take(&mut rest)?;
        batch.put(key, value);
        count += 1;
        if batch.len() >= CHUNK {
            store.apply(std::mem::take(&mut batch))?;
        }
    }
    store.apply(batch)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::store::MemoryStore;

    #[test]
    fn a_dump_restores_every_entry() {
        let original = MemoryStore::default();
        let mut batch = Batch::default();
        for i in 0..25_000u32 {
            batch.put(i.to_be_bytes().to_vec(), vec![i as u8; (i % 7) as usize]);
        }
        batch.put(vec![0xff, 0xfe], Vec::new());
        original.apply(batch).unwrap();
        let dump = export(&original).unwrap();
        let copy = MemoryStore::default();
        assert_eq!(import(&copy, &dump).unwrap(), 25_001);
        let all = |s: &MemoryStore| s.range(&[], &[0xff; 8], usize::MAX).unwrap();
        assert_eq!(all(&copy), all(&original));
        assert!(
            import(&copy, &dump[..dump.len() - 1]).is_err(),
            "a cut dump is refused"
        );
        assert!(import(&copy, b"not a dump").is_err());
    }
}
