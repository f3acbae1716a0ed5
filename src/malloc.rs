//! Keeping freed memory for reuse (glibc only, opt-in, process-wide).
//!
//! A training step of the AWD-LSTM language model allocates and frees buffers of hundreds of
//! megabytes (the decoder's logits over a 30,000-word vocabulary are 270 MB for 32 x 70 tokens).
//! glibc serves every allocation above 32 MB with a fresh `mmap` and returns it with `munmap`, so
//! each step the kernel hands out and zeroes the same pages again: on `awd_lm_train` that was
//! 17 % of the time in page faults (perf), and turning it off made the step about 25 % faster.
//!
//! [`keep_freed_memory`] makes glibc allocate from its heap only and keep freed memory for the
//! next allocation, as the environment variables `MALLOC_MMAP_MAX_=0` and a large
//! `MALLOC_TRIM_THRESHOLD_` would. It is a process-wide choice for an application (the crate's
//! binary and examples make it); a library should not make it silently, so nothing here runs
//! unless called. The trade-off: memory freed by a training loop is not returned to the system
//! until the process ends.

/// Asks the C allocator to keep freed memory for reuse instead of returning it to the system.
///
/// Returns `true` when the setting took effect (Linux with glibc), `false` elsewhere (a no-op).
/// Call it once at the start of `main`, before threads start allocating.
///
/// ```
/// let _ = ulmfit::malloc::keep_freed_memory();
/// ```
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator parameters; it is documented as safe to call at
        // any time, and every value here is in its accepted range.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
                && libc::mallopt(libc::M_TOP_PAD, 64 << 20) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn takes_effect_on_glibc_and_allocation_still_works() {
        let on = super::keep_freed_memory();
        assert_eq!(on, cfg!(all(target_os = "linux", target_env = "gnu")));
        // A large allocation after the change is served and usable.
        let v = vec![1u8; 300 << 20];
        assert_eq!(v.iter().map(|&b| b as usize).sum::<usize>(), 300 << 20);
    }
}
