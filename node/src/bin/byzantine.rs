//! `lockstep-byzantine`: a test build of the node that can misbehave as its `[byzantine]`
//! config section says (equivocate, stay silent, censor, withhold). Built only with the
//! `byzantine` feature, which no release build and no `scripts/up.sh` enables; the fault
//! runner starts it in place of `lockstep` for the validators it makes Byzantine.

/// mimalloc: cheaper cross-thread frees (bundles are decoded on one thread and freed on
/// another) and less fragmentation than glibc malloc's per-thread arenas. It counts live bytes
/// only when asked to (`LOCKSTEP_COUNT_HEAP=1`).
#[global_allocator]
static ALLOC: lockstep_alloc::Allocator = lockstep_alloc::Allocator;

fn main() -> std::process::ExitCode {
    lockstep_node::cli::main()
}
