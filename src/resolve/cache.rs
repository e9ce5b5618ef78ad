//! The lookup cache of `DynamoDirectory`: answers (found or not found)
//! reused for their lifetime (`CachePolicy`), bounded by entries. When it
//! is full, expired entries go first, then the least recently used (the
//! `lru` crate's order: a hit or an insertion makes an entry the newest).

use super::tables::CachePolicy;
use lru::LruCache;
use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Instant;

/// One answer and when it was learnt.
struct Entry {
    value: Option<String>,
    at: Instant,
}

pub(crate) struct LookupCache<K: Hash + Eq> {
    policy: CachePolicy,
    entries: Mutex<LruCache<K, Entry>>,
}

impl<K: Hash + Eq + Clone> LookupCache<K> {
    pub(crate) fn new(policy: CachePolicy) -> LookupCache<K> {
        let cap = NonZeroUsize::new(policy.max_entries).unwrap_or(NonZeroUsize::MIN);
        LookupCache {
            policy,
            entries: Mutex::new(LruCache::new(cap)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<K, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fresh(&self, e: &Entry, now: Instant) -> bool {
        let ttl = if e.value.is_some() {
            self.policy.positive
        } else {
            self.policy.negative
        };
        now.saturating_duration_since(e.at) < ttl
    }

    /// Split `keys` into answers still fresh at `now` and keys to look up.
    pub(crate) fn split<Q: Clone>(
        &self,
        keys: &[Q],
        key: impl Fn(&Q) -> K,
        now: Instant,
    ) -> (HashMap<K, Option<String>>, Vec<Q>) {
        let mut entries = self.lock();
        let mut hit = HashMap::new();
        let mut miss = Vec::new();
        for q in keys {
            let k = key(q);
            match entries.get(&k) {
                Some(e) if self.fresh(e, now) => {
                    let value = e.value.clone();
                    hit.insert(k, value);
                }
                Some(_) => {
                    entries.pop(&k);
                    miss.push(q.clone());
                }
                None => miss.push(q.clone()),
            }
        }
        (hit, miss)
    }

    /// Remember answers learnt at `now`. When they do not fit, expired
    /// entries are dropped first; the least recently used go after.
    pub(crate) fn insert_all(
        &self,
        answers: impl IntoIterator<Item = (K, Option<String>)>,
        now: Instant,
    ) {
        let answers: Vec<(K, Option<String>)> = answers.into_iter().collect();
        let mut entries = self.lock();
        let new = answers.iter().filter(|(k, _)| !entries.contains(k)).count();
        if entries.len() + new > entries.cap().get() {
            let expired: Vec<K> = entries
                .iter()
                .filter(|(_, e)| !self.fresh(e, now))
                .map(|(k, _)| k.clone())
                .collect();
            for k in expired {
                entries.pop(&k);
            }
        }
        for (k, value) in answers {
            entries.put(k, Entry { value, at: now });
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cache(max_entries: usize) -> LookupCache<String> {
        LookupCache::new(CachePolicy {
            positive: Duration::from_secs(300),
            negative: Duration::from_secs(60),
            max_entries,
        })
    }

    fn keys(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    /// Full: expired entries (here the not-found answers, past their 60 s)
    /// leave before any fresh one, however old.
    #[test]
    fn expired_entries_leave_first() {
        let c = cache(100);
        let t0 = Instant::now();
        c.insert_all(
            keys("found", 50).into_iter().map(|k| (k, Some("v".into()))),
            t0,
        );
        c.insert_all(keys("none", 50).into_iter().map(|k| (k, None)), t0);
        let later = t0 + Duration::from_secs(61);
        c.insert_all(
            keys("new", 50).into_iter().map(|k| (k, Some("n".into()))),
            later,
        );
        assert_eq!(c.len(), 100);
        let (hit, miss) = c.split(&keys("found", 50), Clone::clone, later);
        assert_eq!((hit.len(), miss.len()), (50, 0));
        let (hit, _) = c.split(&keys("none", 50), Clone::clone, later);
        assert!(hit.is_empty());
    }

    /// Full of fresh entries: the least recently used leave, and a hit
    /// counts as a use.
    #[test]
    fn then_the_least_recently_used() {
        let c = cache(3);
        let t = Instant::now();
        c.insert_all(keys("k", 3).into_iter().map(|k| (k, Some("v".into()))), t);
        let _ = c.split(&["k0".to_string()], Clone::clone, t);
        c.insert_all([("k3".to_string(), None)], t);
        let (hit, miss) = c.split(&keys("k", 4), Clone::clone, t);
        assert_eq!(miss, vec!["k1".to_string()]);
        assert_eq!(hit.len(), 3);
        assert_eq!(hit["k3"], None);
        assert_eq!(hit["k0"].as_deref(), Some("v"));
    }
}
