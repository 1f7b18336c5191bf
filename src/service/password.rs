//! argon2id password hashing on a bounded pool. A few worker threads (about one per core) each
//! own the argon2 memory blocks (19 MiB at the default cost) and reuse them for every run, so
//! memory stays at workers x 19 MiB however many logins arrive; the allocator never sees a
//! run's blocks come and go. Work waits in a bounded queue, with at most a share of it per
//! client address; beyond either, the caller gets `Busy` at once (503 with Retry-After), so a
//! flood from one address cannot starve the logins of others.

use crate::core::secret::ct_eq;
use crate::error::{Error, Result};
use argon2::password_hash::ParamsString;
use argon2::password_hash::{Ident, Output, PasswordHash, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tokio::sync::oneshot;
use zeroize::Zeroizing;

pub const MIN_PASSWORD_LEN: usize = 8;
pub const MAX_PASSWORD_LEN: usize = 1024;

pub fn check_policy(password: &str) -> Result<()> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(Error::invalid(
            "password",
            format!("must be at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    if n > MAX_PASSWORD_LEN {
        return Err(Error::invalid(
            "password",
            format!("must be at most {MAX_PASSWORD_LEN} characters"),
        ));
    }
    Ok(())
}

/// One argon2 run into `out`, with `blocks` (grown to the cost's size once, then reused) as its
/// memory.
fn run(
    blocks: &mut Vec<Block>,
    argon2: &Argon2<'_>,
    n_blocks: usize,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    if blocks.len() < n_blocks {
        blocks.resize(n_blocks, Block::new());
    }
    argon2.hash_password_into_with_memory(password, salt, out, &mut blocks[..n_blocks])
}

/// A fresh PHC string for `password` (argon2id, default cost), using `blocks` as argon2's memory.
fn hash_with(blocks: &mut Vec<Block>, password: &[u8]) -> Result<String> {
    let params = Params::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_buf)
        .map_err(|e| Error::internal(format!("salt: {e}")))?;
    let mut out = [0u8; 32];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    run(blocks, &argon2, params.block_count(), password, salt_bytes, &mut out)
        .map_err(|e| Error::internal(format!("password hashing failed: {e}")))?;
    let phc = PasswordHash {
        algorithm: Ident::new("argon2id").map_err(Error::internal)?,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(Error::internal)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(Error::internal)?),
    };
    Ok(phc.to_string())
}

/// Does `password` match the PHC string `phc`? Uses `blocks` as argon2's memory.
fn verify_with(blocks: &mut Vec<Block>, password: &[u8], phc: &str) -> bool {
    let Ok(h) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(alg), Ok(params), Some(expected), Some(salt)) =
        (Algorithm::try_from(h.algorithm), Params::try_from(&h), h.hash, h.salt)
    else {
        return false;
    };
    let version = h.version.map(Version::try_from).unwrap_or(Ok(Version::V0x13));
    let Ok(version) = version else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let n = params.block_count();
    run(blocks, &Argon2::new(alg, version, params), n, password, salt, &mut out).is_ok()
        && ct_eq(&out, expected.as_bytes())
}

enum Task {
    Hash(oneshot::Sender<Result<String>>),
    /// `None`: no such user; spend the same time against a dummy hash and answer false.
    Verify(Option<String>, oneshot::Sender<bool>),
}

struct Job {
    password: Zeroizing<String>,
    task: Task,
}

/// The argon2 worker pool.
pub struct HashPool {
    tx: SyncSender<Job>,
    /// Jobs queued or running, per client address.
    per_address: Mutex<HashMap<String, usize>>,
    address_share: usize,
}

impl std::fmt::Debug for HashPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashPool")
            .field("address_share", &self.address_share)
            .finish()
    }
}

/// A hash of a random password, verified against when the user does not exist, so that a
/// login for an unknown user costs as much as one for a known user.
fn dummy_hash(blocks: &mut Vec<Block>) -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_with(blocks, crate::core::secret::new_url_secret().as_bytes()).unwrap_or_default())
}

fn work(rx: Arc<Mutex<Receiver<Job>>>) {
    let mut blocks: Vec<Block> = vec![];
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(PoisonError::into_inner);
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let pw = job.password.as_bytes();
        match job.task {
            Task::Hash(reply) => {
                let _ = reply.send(hash_with(&mut blocks, pw));
            }
            Task::Verify(phc, reply) => {
                let ok = match phc {
                    Some(p) if job.password.chars().count() <= MAX_PASSWORD_LEN => verify_with(&mut blocks, pw, &p),
                    Some(_) => false,
                    None => {
                        let dummy = dummy_hash(&mut blocks);
                        verify_with(&mut blocks, pw, dummy);
                        false
                    }
                };
                let _ = reply.send(ok);
            }
        }
    }
}

/// One job's place in the pool, given back when it is dropped.
struct Admission<'a> {
    pool: &'a HashPool,
    address: String,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        let mut m = self.pool.per_address.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.address);
            }
        }
    }
}

impl HashPool {
    /// `workers` threads, `queue` jobs waiting at most, `address_share` queued or running per
    /// client address at most.
    pub fn new(workers: usize, queue: usize, address_share: usize) -> Result<Self, String> {
        let (tx, rx) = sync_channel::<Job>(queue.max(1));
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("keygate-argon2-{i}"))
                .spawn(move || work(rx))
                .map_err(|e| format!("cannot start the password hashing threads: {e}"))?;
        }
        Ok(HashPool {
            tx,
            per_address: Mutex::new(HashMap::new()),
            address_share: address_share.max(1),
        })
    }

    /// The default size: one worker per core, a queue of 16 per worker, a quarter of it per address.
    pub fn for_this_machine() -> Result<Self, String> {
        let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let queue = workers * 16;
        Self::new(workers, queue, (queue / 4).max(2))
    }

    fn admit(&self, address: &str) -> Result<Admission<'_>> {
        let mut m = self.per_address.lock().unwrap_or_else(PoisonError::into_inner);
        let n = m.entry(address.to_string()).or_default();
        if *n >= self.address_share {
            return Err(Error::Busy { retry_after_secs: 1 });
        }
        *n += 1;
        Ok(Admission {
            pool: self,
            address: address.to_string(),
        })
    }

    fn submit(&self, job: Job) -> Result<()> {
        self.tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => Error::Busy { retry_after_secs: 1 },
            TrySendError::Disconnected(_) => Error::internal("the password hashing threads are gone"),
        })
    }

    /// Verify `password` against `phc` for a client at `address`; with `None` (no such user),
    /// spend the same time and answer false.
    pub async fn verify(&self, password: &str, phc: Option<String>, address: &str) -> Result<bool> {
        let _place = self.admit(address)?;
        let (reply, answer) = oneshot::channel();
        self.submit(Job {
            password: Zeroizing::new(password.to_string()),
            task: Task::Verify(phc, reply),
        })?;
        answer.await.map_err(Error::internal)
    }

    /// A PHC string for a new password.
    pub async fn hash(&self, password: String) -> Result<String> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job {
            password: Zeroizing::new(password),
            task: Task::Hash(reply),
        })?;
        answer.await.map_err(Error::internal)?
    }
}

/// The process's pool, started on first use.
pub fn pool() -> Result<&'static HashPool> {
    static POOL: OnceLock<Result<HashPool, String>> = OnceLock::new();
    POOL.get_or_init(HashPool::for_this_machine)
        .as_ref()
        .map_err(|e| Error::internal(e.clone()))
}

/// A PHC string for a new password (on the pool).
pub async fn hash(password: String) -> Result<String> {
    pool()?.hash(password).await
}

/// Verify `password` against `phc` (on the pool); with `None`, spend the same time and answer false.
pub async fn verify(password: String, phc: Option<String>) -> Result<bool> {
    pool()?.verify(&password, phc, "local").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_with_reused_memory_and_match_the_argon2_crate() {
        let mut blocks = vec![];
        let phc = hash_with(&mut blocks, b"correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_with(&mut blocks, b"correct horse", &phc));
        assert!(!verify_with(&mut blocks, b"wrong horse", &phc));
        // The argon2 crate's own verifier agrees, both ways.
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let h = PasswordHash::new(&phc).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &h).is_ok());
        let theirs = Argon2::default()
            .hash_password(b"pw-of-theirs", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify_with(&mut blocks, b"pw-of-theirs", &theirs));
        assert!(!verify_with(&mut blocks, b"x", "not a phc string"));
    }

    #[tokio::test]
    async fn the_pool_answers_and_refuses_past_an_addresss_share() {
        let pool = HashPool::new(1, 4, 1).unwrap();
        let phc = pool.hash("a-password".into()).await.unwrap();
        assert!(pool.verify("a-password", Some(phc.clone()), "a").await.unwrap());
        assert!(!pool.verify("nope", Some(phc.clone()), "a").await.unwrap());
        assert!(!pool.verify("nope", None, "a").await.unwrap());
        // One address may hold one place: a second at once is refused, another address is not.
        let first = pool.verify("a-password", Some(phc.clone()), "a");
        let second = pool.verify("a-password", Some(phc.clone()), "a");
        let other = pool.verify("a-password", Some(phc), "b");
        let (x, y, z) = tokio::join!(first, second, other);
        assert!(x.unwrap());
        assert!(matches!(y, Err(Error::Busy { .. })));
        assert!(z.unwrap());
    }
}
