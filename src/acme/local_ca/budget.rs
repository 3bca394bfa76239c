//! Per-client budgets for the requests that make the local CA remember something
//! (new accounts, new orders and their authorizations): one token bucket per client
//! address, so that one flooding client runs out long before the CA's totals do.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

/// Objects a client may create at once: a few full orders, or many small ones.
const CAPACITY: f64 = 300.0;
/// Objects a client may create per second once its burst is spent; quire's own
/// client creates an account and an order with a few names per renewal.
const REFILL_PER_SECOND: f64 = 2.0;
/// Clients tracked at once; a bucket that has refilled is forgotten, so only
/// addresses that spent something in the last few minutes count.
const MAX_CLIENTS: usize = 4096;

struct Bucket {
    tokens: f64,
    updated: DateTime<Utc>,
}

impl Bucket {
    fn refill(&mut self, now: DateTime<Utc>) {
        let elapsed = (now - self.updated).num_milliseconds().max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * REFILL_PER_SECOND).min(CAPACITY);
        self.updated = now;
    }
}

#[derive(Default)]
pub struct Budgets {
    buckets: HashMap<IpAddr, Bucket>,
}

/// One budget per IPv4 address and per IPv6 /64, the block a single host usually holds.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

fn seconds_for(tokens: f64) -> u64 {
    (tokens / REFILL_PER_SECOND).ceil().max(1.0) as u64
}

impl Budgets {
    /// Takes `cost` from the client's budget, or says in how many seconds it will
    /// have enough.
    pub fn spend(&mut self, client: IpAddr, cost: usize, now: DateTime<Utc>) -> Result<(), u64> {
        let cost = cost as f64;
        let key = client_key(client);
        if !self.buckets.contains_key(&key) && self.buckets.len() >= MAX_CLIENTS {
            self.prune(now);
            if self.buckets.len() >= MAX_CLIENTS {
                return Err(seconds_for(CAPACITY));
            }
        }
        let bucket = self.buckets.entry(key).or_insert(Bucket {
            tokens: CAPACITY,
            updated: now,
        });
        bucket.refill(now);
        if bucket.tokens < cost {
            return Err(seconds_for(cost - bucket.tokens));
        }
        bucket.tokens -= cost;
        Ok(())
    }

    /// Forgets the clients whose budget is whole again: they are as good as new.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        self.buckets.retain(|_, bucket| {
            bucket.refill(now);
            bucket.tokens < CAPACITY
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn start() -> DateTime<Utc> {
        "2026-03-01T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_spent_budget_refills_with_time_and_says_when() {
        let mut budgets = Budgets::default();
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        budgets.spend(client, 300, start()).unwrap();
        assert_eq!(budgets.spend(client, 10, start()), Err(5));
        budgets
            .spend(client, 10, start() + Duration::seconds(5))
            .unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        budgets.spend(other, 300, start()).unwrap();
    }

    #[test]
    fn one_ipv6_slash_64_is_one_client() {
        let mut budgets = Budgets::default();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        budgets.spend(a, 300, start()).unwrap();
        assert!(budgets.spend(b, 1, start()).is_err());
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        budgets.spend(mapped, 300, start()).unwrap();
        assert!(
            budgets
                .spend("192.0.2.1".parse().unwrap(), 1, start())
                .is_err()
        );
    }

    #[test]
    fn the_table_of_clients_is_bounded() {
        let mut budgets = Budgets::default();
        for i in 0..MAX_CLIENTS as u32 {
            budgets
                .spend(IpAddr::V4((0x0a00_0000 + i).into()), 1, start())
                .unwrap();
        }
        let newcomer: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(budgets.spend(newcomer, 1, start()).is_err());
        // A second later every bucket has refilled and is forgotten.
        budgets
            .spend(newcomer, 1, start() + Duration::seconds(1))
            .unwrap();
        assert_eq!(budgets.buckets.len(), 1);
    }
}
