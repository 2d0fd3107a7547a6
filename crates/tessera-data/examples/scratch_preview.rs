// Temporary development helper (removed before hand-off).
use tessera_data::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = &args[1];
    let what = args.get(2).map(String::as_str).unwrap_or("scenes");
    let h: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(32);
    let w: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(h);
    let seed: u64 = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(0);
    let t = std::time::Instant::now();
    let grid = match what {
        "mnist" => preview_grid(&Mnist::train(), 12, 2),
        _ => {
            let ds = Scenes::new(ScenesConfig { height: h, width: w, len: 600, seed }).unwrap();
            preview_grid(&ds, if w > h { 3 } else { 8 }, (96 / h).max(1))
        }
    };
    eprintln!("{:?}", t.elapsed());
    grid.save(out).unwrap();
}
