//! zstd's settings for backup files (COPY chunks and pg_dump's output alike).

/// zstd's settings for `level`. Levels 2 and 3 keep zstd's own search but with smaller
/// match tables: 64 Ki long-hash and 16 Ki short-hash entries (`hashLog` 16, `chainLog`
/// 14) instead of level 3's 128 Ki and 64 Ki. The tables then stay in a core's L2 cache
/// and compression of table rows is about 1.3 times as fast at the same ratio (on the
/// benchmark's binary rows 0.2% smaller, on text such as source code or prose up to 1.2%
/// larger); docs/backup.md has the figures. Level 1 and below already use smaller tables,
/// and levels from 4 search differently: those keep zstd's own settings.
pub(super) fn compression_parameters(level: i32) -> Vec<zstd::zstd_safe::CParameter> {
    use zstd::zstd_safe::CParameter;
    let mut parameters = vec![
        CParameter::CompressionLevel(level),
        CParameter::ChecksumFlag(true),
    ];
    if (2..=3).contains(&level) {
        parameters.extend([CParameter::HashLog(16), CParameter::ChainLog(14)]);
    }
    parameters
}

/// A bulk compressor with [`compression_parameters`].
pub(super) fn compressor(level: i32) -> std::io::Result<zstd::bulk::Compressor<'static>> {
    let mut compressor = zstd::bulk::Compressor::new(level)?;
    for parameter in compression_parameters(level) {
        compressor.set_parameter(parameter)?;
    }
    Ok(compressor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table_logs(level: i32) -> (Option<u32>, Option<u32>) {
        use zstd::zstd_safe::CParameter;
        let mut logs = (None, None);
        for parameter in compression_parameters(level) {
            match parameter {
                CParameter::HashLog(h) => logs.0 = Some(h),
                CParameter::ChainLog(c) => logs.1 = Some(c),
                _ => {}
            }
        }
        logs
    }

    #[test]
    fn the_default_levels_use_match_tables_that_fit_a_cores_cache_and_others_zstds_own() {
        assert_eq!(table_logs(3), (Some(16), Some(14)));
        assert_eq!(table_logs(2), (Some(16), Some(14)));
        assert_eq!(table_logs(1), (None, None));
        assert_eq!(table_logs(4), (None, None));
        assert_eq!(table_logs(19), (None, None));
    }

    #[test]
    fn frames_compressed_with_the_capped_tables_decode_with_their_checksums() {
        let data: Vec<u8> = (0..3_000_000u32)
            .flat_map(|i| format!("{i}\trow {}\n", i % 977).into_bytes())
            .collect();
        let compressed = compressor(3).unwrap().compress(&data).unwrap();
        assert!(compressed.len() < data.len() / 4);
        // The frame carries a content checksum: a flipped byte inside is caught.
        let mut damaged = compressed.clone();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x40;
        assert!(zstd::decode_all(&damaged[..])
            .map(|d| d != data)
            .unwrap_or(true));
        assert_eq!(zstd::decode_all(&compressed[..]).unwrap(), data);
    }
}
