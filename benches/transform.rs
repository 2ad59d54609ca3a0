//! Transform engine throughput: a 10-command sed script on 4 KB and 64 KB values, and a
//! 10-operation JSON mapping on a 4 KB document.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use secret_replicator::transform::{LoadVars, Transform, Vars};

#[path = "cases/mod.rs"]
mod cases;
use cases::{MAPPING, SCRIPT, document, value, vars};

fn bench(c: &mut Criterion) {
    let lv = LoadVars::with_builtins(Vars::new());
    let vars = vars();
    let sed = Transform::sed("bench", SCRIPT, &lv).expect("script loads");
    for size in [4 * 1024, 64 * 1024] {
        let input = value(size);
        assert!(sed.apply(&input, &vars).expect("applies").is_some());
        c.bench_function(&format!("sed 10 commands, {} KB", size / 1024), |b| {
            b.iter(|| sed.apply(black_box(&input), &vars))
        });
    }
    let mapping = Transform::json("bench", MAPPING, &lv).expect("mapping loads");
    let doc = document();
    assert!(mapping.apply(&doc, &vars).expect("applies").is_some());
    c.bench_function("json 10 operations, 4 KB", |b| {
        b.iter(|| mapping.apply(black_box(&doc), &vars))
    });
    c.bench_function("sed load 10 commands", |b| {
        b.iter(|| Transform::sed("bench", black_box(SCRIPT), &lv))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
