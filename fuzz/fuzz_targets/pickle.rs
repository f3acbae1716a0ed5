//! The fastai weight and vocabulary readers (`read_pth`, `read_itos`) on arbitrary bytes:
//! every input must give `Ok` or `Err`, never a panic, an abort or an allocation failure.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ulmfit::fastai::{FastaiError, read_itos, read_pth};

fn path() -> &'static std::path::Path {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("ulmfit-fuzz-pickle-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    std::fs::write(path(), data).expect("write the input file");
    for result in [read_pth(path()).map(|_| ()), read_itos(path()).map(|_| ())] {
        // The reader catches pytorch-reader's panics; one that happened is a finding too.
        if let Err(FastaiError::ReaderPanicked { message, .. }) = result {
            panic!("pytorch-reader panicked: {message}");
        }
    }
});
