use models::scenario::Scenario;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let sc = Scenario::load(path.as_ref()).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let seeds: u64 = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(3);
    for d in &sc.deployments {
        for f in &sc.failures {
            let mut acc = vec![0.0f64; 10];
            for seed in 0..seeds {
                let o = models::cluster::run(&sc, d, f, sc.seed + seed);
                let m = &o.metrics;
                let v = [
                    m.startup_s.unwrap_or(f64::NAN),
                    m.success_before as f64,
                    m.failed_before as f64,
                    m.success_after.map_or(f64::NAN, |x| x as f64),
                    m.failed_after.map_or(f64::NAN, |x| x as f64),
                    m.latency_before_s.unwrap_or(f64::NAN),
                    m.latency_after_s.unwrap_or(f64::NAN),
                    m.recovery_s.unwrap_or(f64::NAN),
                    m.dead_clients as f64,
                    o.events as f64,
                ];
                for i in 0..10 {
                    acc[i] += v[i] / seeds as f64;
                }
            }
            println!(
                "{:14} {:24} {}",
                d.display_name(),
                f.kind.name(),
                acc.iter()
                    .map(|x| format!("{x:8.2}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
    }
}
