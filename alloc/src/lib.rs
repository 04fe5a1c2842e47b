//! The node's global allocator and its heap figures, for attributing its RSS: the Rust heap
//! (mimalloc) and the C heap (glibc malloc, which RocksDB's C++ code allocates from). The node
//! publishes [`snapshot`] on each scrape of `/metrics` as `lockstep_process_memory_bytes{kind}`.
//!
//! Kinds:
//! - `mimalloc_committed`: memory mimalloc has committed from the OS, live or free-but-held;
//! - `glibc_in_use`, `glibc_free`: glibc's heap, allocated and held free (`mallinfo2`);
//! - `rust_live`: bytes the Rust code has allocated and not freed. Counting them costs an atomic
//!   operation per allocation and free, so it is off unless the node is started with
//!   `LOCKSTEP_COUNT_HEAP=1` in its environment (the soak's attribution runs do that).
//!
//! [`init_from_env`] also caps glibc's malloc arenas at [`GLIBC_ARENAS`] (unless the operator
//! set `MALLOC_ARENA_MAX`), which keeps RocksDB's heap from holding free memory in many arenas.
//!
//! This is the workspace's one crate with unsafe code: a `GlobalAlloc` cannot be written
//! without it, nor can C be called.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// The environment variable that turns on counting of live Rust heap bytes.
pub const COUNT_HEAP_ENV: &str = "LOCKSTEP_COUNT_HEAP";

static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);

/// mimalloc, optionally counting live bytes. The node binary's global allocator.
pub struct Allocator;

impl Allocator {
    #[inline]
    fn add(delta: isize) {
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_add(delta, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded unchanged to mimalloc, which upholds `GlobalAlloc`'s
// contract; the counter only observes sizes.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's layout is passed on as given.
        let p = unsafe { mimalloc::MiMalloc.alloc(layout) };
        if !p.is_null() {
            Self::add(layout.size() as isize);
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            Self::add(layout.size() as isize);
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator with `layout`, so by mimalloc.
        unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) };
        Self::add(-(layout.size() as isize));
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`; `new_size` is the caller's.
        let p = unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            Self::add(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// glibc malloc arenas the node allows itself unless [`GLIBC_ARENAS_ENV`] says otherwise.
///
/// glibc gives each thread that meets a locked arena a new one, up to 8 per core, and every
/// arena holds on to its own free memory. In the node only RocksDB's C++ code allocates from
/// glibc (Rust allocates from mimalloc), so a few arenas are enough. Measured in a 10-minute
/// soak (BENCHMARKS.md, fifteenth session): glibc's free memory 3–23 MB per validator with 2
/// arenas against 37–49 MB without a limit, and RSS about 20 MB lower.
pub const GLIBC_ARENAS: i32 = 2;
/// glibc's own setting, which wins when set: the operator's choice is left alone.
pub const GLIBC_ARENAS_ENV: &str = "MALLOC_ARENA_MAX";

/// The arena limit to apply, given `MALLOC_ARENA_MAX` as found: none when it is set (glibc
/// applies it itself), [`GLIBC_ARENAS`] otherwise.
pub fn glibc_arena_limit(env: Option<&str>) -> Option<i32> {
    match env {
        Some(_) => None,
        None => Some(GLIBC_ARENAS),
    }
}

/// Caps glibc's malloc arenas at `n`; whether glibc took the setting (false off glibc). It
/// only binds arenas not yet created, so call it before the process starts threads.
pub fn limit_glibc_arenas(n: i32) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` sets one of malloc's tunables from two integers; no pointers.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, n) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = n;
        false
    }
}

/// Reads the environment once, first thing in `main` (before any thread starts):
/// - turns on counting if `LOCKSTEP_COUNT_HEAP=1` (the little allocated before this call is
///   not counted, and its frees make the count slightly low);
/// - caps glibc's arenas at [`GLIBC_ARENAS`] unless `MALLOC_ARENA_MAX` is set.
pub fn init_from_env() {
    if std::env::var(COUNT_HEAP_ENV).is_ok_and(|v| v == "1") {
        COUNTING.store(true, Ordering::Relaxed);
    }
    let env = std::env::var(GLIBC_ARENAS_ENV).ok();
    if let Some(n) = glibc_arena_limit(env.as_deref()) {
        limit_glibc_arenas(n);
    }
}

/// The process's heaps, in bytes, by kind (see the module documentation).
pub fn snapshot() -> Vec<(&'static str, f64)> {
    let mut out = Vec::with_capacity(4);
    if COUNTING.load(Ordering::Relaxed) {
        out.push(("rust_live", LIVE.load(Ordering::Relaxed).max(0) as f64));
    }
    let (mut elapsed, mut user, mut system) = (0usize, 0usize, 0usize);
    let (mut rss, mut peak_rss, mut commit, mut peak_commit, mut faults) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    // SAFETY: every pointer is to a live local `usize`, which is what mimalloc writes.
    unsafe {
        libmimalloc_sys::mi_process_info(
            &mut elapsed,
            &mut user,
            &mut system,
            &mut rss,
            &mut peak_rss,
            &mut commit,
            &mut peak_commit,
            &mut faults,
        );
    }
    out.push(("mimalloc_committed", commit as f64));
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallinfo2` only reads glibc's arenas under their locks.
        let m = unsafe { libc::mallinfo2() };
        out.push(("glibc_in_use", (m.uordblks + m.hblkhd) as f64));
        out.push(("glibc_free", m.fordblks as f64));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_snapshot_names_each_heap_once_and_sees_a_live_c_allocation() {
        let kinds: Vec<&str> = snapshot().iter().map(|(k, _)| *k).collect();
        let mut unique = kinds.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), kinds.len(), "{kinds:?}");
        assert!(kinds.contains(&"mimalloc_committed"), "{kinds:?}");

        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            let in_use = |s: &[(&str, f64)]| {
                s.iter()
                    .find(|(k, _)| *k == "glibc_in_use")
                    .map(|(_, v)| *v)
                    .expect("glibc_in_use is reported")
            };
            let before = in_use(&snapshot());
            // 256 MiB straight from glibc: above its largest mmap threshold, so it is one
            // mapped chunk that the C heap's in-use figure must count (untouched, so it costs
            // no RSS). Other tests' allocations move the figure by far less than the margin.
            // SAFETY: a plain malloc/free pair.
            // (`black_box`: the compiler may otherwise drop a malloc whose result goes unused.)
            let p = std::hint::black_box(unsafe { libc::malloc(256 << 20) });
            assert!(!p.is_null());
            let during = in_use(&snapshot());
            // SAFETY: `p` came from malloc above and is freed once.
            unsafe { libc::free(p) };
            assert!(
                during >= before + f64::from(192u32 << 20),
                "in use {before} before a 256 MiB malloc and {during} during it"
            );
        }
    }

    #[test]
    fn arenas_are_capped_unless_the_operator_chose() {
        assert_eq!(glibc_arena_limit(None), Some(GLIBC_ARENAS));
        assert_eq!(glibc_arena_limit(Some("8")), None);
        // An empty or odd value is still the operator's, and glibc's to interpret.
        assert_eq!(glibc_arena_limit(Some("")), None);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        assert!(
            limit_glibc_arenas(GLIBC_ARENAS),
            "glibc refused M_ARENA_MAX"
        );
    }

    #[test]
    fn counting_follows_allocations_reallocations_and_frees_exactly() {
        // Only this test allocates through `Allocator` (the test binary's global allocator is
        // the system's), so the count moves by exactly what it does.
        COUNTING.store(true, Ordering::Relaxed);
        let live = || LIVE.load(Ordering::Relaxed);
        let start = live();
        let layout = Layout::from_size_align(1000, 8).unwrap();
        // SAFETY: a non-zero layout; each pointer is used with the layout it has.
        unsafe {
            let p = Allocator.alloc(layout);
            assert!(!p.is_null());
            assert_eq!(live(), start + 1000);
            let q = Allocator.realloc(p, layout, 3000);
            assert!(!q.is_null());
            assert_eq!(live(), start + 3000);
            Allocator.dealloc(q, Layout::from_size_align(3000, 8).unwrap());
            assert_eq!(live(), start);
            let z = Allocator.alloc_zeroed(layout);
            assert!(std::slice::from_raw_parts(z, 1000).iter().all(|b| *b == 0));
            assert_eq!(live(), start + 1000);
            Allocator.dealloc(z, layout);
        }
        assert_eq!(live(), start);
        assert!(snapshot().iter().any(|(k, _)| *k == "rust_live"));
    }
}
