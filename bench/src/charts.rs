//! PNG charts from `result::Chart` data with plotters' bitmap backend. Text
//! goes through ab_glyph with DejaVu Sans loaded at run time, so no
//! fontconfig/freetype is needed (Debian package fonts-dejavu-core).

use crate::result::{fmt_num, BarSeries, Chart, Series};
use anyhow::{anyhow, bail, Context as _, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const SIZE: (u32, u32) = (1000, 560);

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing chart: {e}")
}

/// Registers DejaVu Sans as "sans-serif" once per process.
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT)
                .map_err(|e| format!("reading {FONT}: {e} (install Debian's fonts-dejavu-core)"))?;
            // plotters keeps &'static font bytes: one font for the process lifetime.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{FONT} is not a usable TrueType font"))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

/// Draws `chart` into `<dir>/<file>.png`; returns the path.
pub fn draw(chart: &Chart, dir: &Path) -> Result<PathBuf> {
    register_font()?;
    let (file, result) = match chart {
        Chart::Distribution {
            file,
            title,
            unit,
            series,
        } => {
            let path = dir.join(format!("{file}.png"));
            (path.clone(), distribution(&path, title, unit, series))
        }
        Chart::Bars {
            file,
            title,
            unit,
            categories,
            series,
        } => {
            let path = dir.join(format!("{file}.png"));
            (path.clone(), bars(&path, title, unit, categories, series))
        }
    };
    result.with_context(|| format!("writing {}", file.display()))?;
    Ok(file)
}

/// Cumulative distribution per series, log-scaled x when the range is wide.
fn distribution(path: &Path, title: &str, unit: &str, series: &[Series]) -> Result<()> {
    let all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| *v > 0.0)
        .collect();
    if all.is_empty() {
        bail!("no samples to draw");
    }
    // Whole decades, so the log axis gets labels at 10, 20, 50, 100...
    let lo = 10f64.powf(
        all.iter()
            .copied()
            .fold(f64::INFINITY, f64::min)
            .log10()
            .floor(),
    );
    let hi = 10f64.powf(all.iter().copied().fold(0.0, f64::max).log10().ceil());
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..1.02f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(unit)
        .y_desc("fraction of runs at or below")
        .x_label_formatter(&|v| fmt_num(*v))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    for (i, s) in series.iter().enumerate() {
        let mut v: Vec<f64> = s.values.iter().copied().filter(|v| *v > 0.0).collect();
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        let mut pts = Vec::with_capacity(v.len() * 2);
        for (k, x) in v.iter().enumerate() {
            pts.push((*x, k as f64 / n));
            pts.push((*x, (k + 1) as f64 / n));
        }
        let color = Palette99::pick(i).to_rgba();
        let median = crate::stats::percentile_sorted(&v, 50.0);
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(3)))
            .map_err(err)?
            .label(format!("{} (median {} {unit})", s.label, fmt_num(median)))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// Grouped bars: one group per category, one bar per series, values on top.
fn bars(
    path: &Path,
    title: &str,
    unit: &str,
    categories: &[String],
    series: &[BarSeries],
) -> Result<()> {
    let ymax = series
        .iter()
        .flat_map(|s| s.values.iter().flatten().copied())
        .fold(0.0, f64::max);
    let ymax = if ymax > 0.0 { ymax * 1.3 } else { 1.0 };
    let ncat = categories.len().max(1) as f64;
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..ncat, 0f64..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc(unit)
        .y_label_formatter(&|v| fmt_num(*v))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    let nser = series.len().max(1) as f64;
    let width = 0.8 / nser;
    for (j, s) in series.iter().enumerate() {
        let color = Palette99::pick(j).to_rgba();
        let rects: Vec<Rectangle<(f64, f64)>> = s
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let x0 = i as f64 + 0.1 + j as f64 * width;
                v.map(|v| Rectangle::new([(x0, 0.0), (x0 + width * 0.92, v)], color.filled()))
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], color.filled()));
        let labels: Vec<Text<(f64, f64), String>> = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let x = i as f64 + 0.1 + (j as f64 + 0.46) * width;
                let style = ("sans-serif", 13)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom));
                match v {
                    Some(v) => Text::new(fmt_num(*v), (x, *v), style),
                    None => Text::new("n/a".to_string(), (x, 0.0), style),
                }
            })
            .collect();
        chart.draw_series(labels).map_err(err)?;
    }
    // Category names under each group, in pixel space below the x axis.
    let style = ("sans-serif", 16)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Top));
    for (i, c) in categories.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        root.draw(&Text::new(c.clone(), (px, py + 8), style.clone()))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 16))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
