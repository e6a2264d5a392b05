//! Recovery of a partition directory from arbitrary segment and index bytes: open (which
//! validates and truncates), then read everything it kept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storage::{LogConfig, PartitionLog};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    // The first byte splits the input between the segment and its offset index.
    let split = data.first().map(|b| *b as usize * data.len() / 256).unwrap_or(0);
    let (log, index) = data.split_at(split.min(data.len()));
    let name = "00000000000000000000";
    if std::fs::write(dir.path().join(format!("{name}.log")), log).is_err()
        || std::fs::write(dir.path().join(format!("{name}.index")), index).is_err()
    {
        return;
    }
    let Ok(p) = PartitionLog::open(dir.path(), "fuzz", 0, LogConfig::default()) else {
        return;
    };
    let mut offset = p.log_start_offset();
    while offset < p.log_end_offset() {
        match p.read_upto(offset, 1 << 20, true, p.log_end_offset()) {
            Ok(b) if !b.is_empty() => {
                let mut next = offset;
                for (_, h, _) in codecs::kafka::batch::BatchIter::new(&b) {
                    next = h.last_offset() + 1;
                }
                if next <= offset {
                    break;
                }
                offset = next;
            }
            _ => break,
        }
    }
});
