//! Signing throughput at typical webhook body sizes, for `scripts/bench-signing.sh`,
//! which compares it with `openssl speed -hmac sha256` on the same core.
//!
//! Benchmark ids are `signing/<function>/<size in bytes>`: `signer` and `sign` sign in
//! the fullup scheme with a keyed [`Signer`] and one-shot, `standard` and
//! `sign_standard` likewise in the Standard Webhooks scheme. The script reads `signer`,
//! `sign` and `standard` back from `target/criterion`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_main};
use fullup_signature::{Secret, Signer, sign, sign_standard};

/// 256 B is a small event, 1 KiB a typical one, 64 KiB a large one.
const SIZES: [usize; 3] = [256, 1024, 64 * 1024];

fn signing(c: &mut Criterion) {
    let secret = Secret::generate();
    let signer = Signer::new(&secret);
    for size in SIZES {
        let body = vec![0x5a_u8; size];
        let mut group = c.benchmark_group("signing");
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("signer", size), &body, |b, body| {
            b.iter(|| signer.sign(black_box(body)))
        });
        group.bench_with_input(BenchmarkId::new("sign", size), &body, |b, body| {
            b.iter(|| sign(black_box(&secret), black_box(body)))
        });
        group.bench_with_input(BenchmarkId::new("standard", size), &body, |b, body| {
            b.iter(|| signer.sign_standard("msg_2mX1bQ", 1_700_000_000, black_box(body)))
        });
        group.bench_with_input(BenchmarkId::new("sign_standard", size), &body, |b, body| {
            b.iter(|| {
                sign_standard(
                    black_box(&secret),
                    "msg_2mX1bQ",
                    1_700_000_000,
                    black_box(body),
                )
            })
        });
        group.finish();
    }
}

/// `criterion_group!` defines an undocumented `pub fn`; a private module keeps it internal.
mod group {
    criterion::criterion_group!(benches, super::signing);
}
criterion_main!(group::benches);
