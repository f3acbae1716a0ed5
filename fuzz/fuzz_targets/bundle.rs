//! The bundle loader on arbitrary manifest, vocabulary and weight files. The input is
//! `[u32 LE manifest length][manifest][u32 LE vocab length][vocab][weights]`; the checksums in
//! a manifest that parses as a JSON object are rewritten to match the other two files, so the
//! fuzzer reaches the manifest checks, the vocabulary and the burnpack parser. A bundle that
//! loads must then predict without panicking.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sha2::Digest;
use ulmfit::bundle::{Bundle, MANIFEST_FILE, MODEL_FILE, VOCAB_FILE};
use ulmfit::predict::{Predictor, PredictorConfig};

fn take<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_le_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let rest = &data[4..];
    let part = rest.get(..len)?;
    *data = &rest[len..];
    Some(part)
}

fn entry(bytes: &[u8]) -> serde_json::Value {
    let sha: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    serde_json::json!({"bytes": bytes.len(), "sha256": sha})
}

fuzz_target!(|data: &[u8]| {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("ulmfit-fuzz-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("temp dir");
        d
    });
    let mut rest = data;
    let (Some(manifest), Some(vocab)) = (take(&mut rest), take(&mut rest)) else {
        return;
    };
    let model = rest;
    let manifest = match serde_json::from_slice::<serde_json::Value>(manifest) {
        Ok(mut v) if v.is_object() => {
            v["files"] = serde_json::json!({MODEL_FILE: entry(model), VOCAB_FILE: entry(vocab)});
            serde_json::to_vec(&v).expect("JSON")
        }
        _ => manifest.to_vec(),
    };
    std::fs::write(dir.join(MANIFEST_FILE), manifest).expect("write");
    std::fs::write(dir.join(VOCAB_FILE), vocab).expect("write");
    std::fs::write(dir.join(MODEL_FILE), model).expect("write");
    let device = ulmfit::device::parse("ndarray").expect("ndarray");
    if let Ok(bundle) = Bundle::load(dir, &device) {
        let predictor = Predictor::new(bundle)
            .with_config(PredictorConfig {
                batch_size: 4,
                max_tokens: Some(64),
            })
            .expect("valid config");
        let _ = predictor.predict_batch(&["", "the movie", "xxpad xxunk !!!"]);
    }
});
