//! The plot: rate and latency per target, as SVG (plotters' SVG backend: no system libraries).

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use super::Results;
use super::targets::TargetKind;

struct Series {
    name: &'static str,
    color: RGBColor,
    values: Vec<Option<f64>>,
}

/// One grouped bar chart: a group per target, a bar per series, the value above each bar.
fn bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    targets: &[&str],
    series: &[Series],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |a, &b| a.max(b));
    let top = if max > 0.0 { max * 1.18 } else { 1.0 };
    let n = targets.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..n as f64, 0.0..top)
        .map_err(|e| anyhow!("plot: {e:?}"))?;
    let names: Vec<String> = targets.iter().map(|s| s.to_string()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - i as f64 - 0.5).abs() < 0.01 && i < names.len() {
                names[i].clone()
            } else {
                String::new()
            }
        })
        .y_desc(y_desc)
        .y_label_formatter(&|y| {
            if *y >= 1e6 {
                format!("{:.1}M", y / 1e6)
            } else if *y >= 1e3 {
                format!("{:.0}k", y / 1e3)
            } else {
                format!("{y:.0}")
            }
        })
        .draw()
        .map_err(|e| anyhow!("plot: {e:?}"))?;
    let k = series.len().max(1) as f64;
    let width = 0.8 / k;
    for (j, s) in series.iter().enumerate() {
        let color = s.color;
        let rects: Vec<_> = s
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (i, v)))
            .map(|(i, v)| {
                let x0 = i as f64 + 0.1 + j as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width * 0.92, v)], color.filled())
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(|e| anyhow!("plot: {e:?}"))?
            .label(s.name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        let labels: Vec<_> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let x0 = i as f64 + 0.1 + j as f64 * width;
                let text = match v {
                    Some(v) if *v >= 1e4 => format!("{:.0}k", v / 1e3),
                    Some(v) => format!("{v:.0}"),
                    None => "n/a".into(),
                };
                Text::new(
                    text,
                    (x0, v.unwrap_or(0.0) + top * 0.02),
                    ("sans-serif", 13).into_font(),
                )
            })
            .collect();
        chart
            .draw_series(labels)
            .map_err(|e| anyhow!("plot: {e:?}"))?;
    }
    if series.len() > 1 {
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| anyhow!("plot: {e:?}"))?;
    }
    Ok(())
}

pub fn write(res: &Results, path: &Path) -> Result<()> {
    let r = &res.results;
    let targets: Vec<TargetKind> = TargetKind::ALL
        .into_iter()
        .filter(|t| r.values().any(|m| m.contains_key(t.name())))
        .collect();
    let names: Vec<&str> = targets.iter().map(|t| t.name()).collect();
    let col = |scenario: &str, pick: &dyn Fn(&super::scenarios::Cell) -> Option<f64>| {
        targets
            .iter()
            .map(|t| {
                r.get(scenario)
                    .and_then(|m| m.get(t.name()))
                    .filter(|c| c.skipped.is_none())
                    .and_then(pick)
            })
            .collect::<Vec<_>>()
    };
    let root = SVGBackend::new(path, (1400, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("plot: {e:?}"))?;
    let title = format!(
        "cargo xtask bench{} — {} — {} ({} CPUs), commit {}",
        if res.quick { " --quick" } else { "" },
        res.timestamp,
        res.machine.cpu_model,
        res.machine.cpus,
        res.git
            .commit
            .as_deref()
            .map_or("?", |c| &c[..c.len().min(10)])
    );
    let root = root
        .titled(&title, ("sans-serif", 18))
        .map_err(|e| anyhow!("plot: {e:?}"))?;
    let panels = root.split_evenly((2, 2));
    bars(
        &panels[0],
        "Stateless forwarding",
        "messages/s forwarded",
        &names,
        &[
            Series {
                name: "full blast",
                color: RGBColor(31, 119, 180),
                values: col("forward", &|c| c.msgs_per_s),
            },
            Series {
                name: "< 1% loss",
                color: RGBColor(23, 190, 207),
                values: col("forward-sustained", &|c| c.msgs_per_s),
            },
        ],
    )?;
    bars(
        &panels[1],
        "Calls/s at < 0.1% failed (6 messages per call)",
        "calls/s",
        &names,
        &[Series {
            name: "calls/s",
            color: RGBColor(44, 160, 44),
            values: col("calls", &|c| c.calls_per_s),
        }],
    )?;
    bars(
        &panels[2],
        "Latency at 50% of the sustained forwarding maximum",
        "microseconds",
        &names,
        &[
            Series {
                name: "p50",
                color: RGBColor(255, 127, 14),
                values: col("latency", &|c| c.p50_us.map(|v| v as f64)),
            },
            Series {
                name: "p99",
                color: RGBColor(214, 39, 40),
                values: col("latency", &|c| c.p99_us.map(|v| v as f64)),
            },
        ],
    )?;
    bars(
        &panels[3],
        "REGISTER/s (closed loop, 200 in flight)",
        "registrations/s",
        &names,
        &[
            Series {
                name: "no auth",
                color: RGBColor(148, 103, 189),
                values: col("register", &|c| c.calls_per_s),
            },
            Series {
                name: "digest auth",
                color: RGBColor(140, 86, 75),
                values: col("register-auth", &|c| c.calls_per_s),
            },
        ],
    )?;
    root.present().map_err(|e| anyhow!("plot: {e:?}"))?;
    Ok(())
}
