//! `lockstep`: the Lockstep validator node.

/// mimalloc: cheaper cross-thread frees (bundles are decoded on one thread and freed on
/// another) and less fragmentation than glibc malloc's per-thread arenas. It counts live bytes
/// only when asked to (`LOCKSTEP_COUNT_HEAP=1`).
#[global_allocator]
static ALLOC: lockstep_alloc::Allocator = lockstep_alloc::Allocator;

fn main() -> std::process::ExitCode {
    lockstep_node::cli::main()
}
