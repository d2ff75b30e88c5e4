//! One PNG per suite: a panel per metric, a bar per tool at its median with min/max whiskers.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::model::fmt_num;
use crate::report::Suite;

const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

static FONT: Once = Once::new();

fn register_font() -> Result<(), String> {
    let mut result = Ok(());
    FONT.call_once(|| {
        result = match FONTS.iter().find_map(|p| std::fs::read(p).ok()) {
            // plotters keeps fonts for the life of the process.
            Some(bytes) => plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into_boxed_slice()))
                .map_err(|_| "the font could not be parsed".to_string()),
            None => Err(format!("no TTF font found (apt-get install fonts-dejavu-core); looked at {}", FONTS.join(", "))),
        };
    });
    result
}

fn colour(tool: &str, i: usize) -> RGBColor {
    if tool == "berth" {
        return RGBColor(0x1f, 0x5f, 0xbf);
    }
    const PEERS: [RGBColor; 7] = [
        RGBColor(0xe0, 0x7b, 0x28),
        RGBColor(0x8e, 0x44, 0xad),
        RGBColor(0x2e, 0x9e, 0x6a),
        RGBColor(0xc0, 0x39, 0x2b),
        RGBColor(0x7f, 0x8c, 0x8d),
        RGBColor(0xd4, 0xac, 0x0d),
        RGBColor(0x34, 0x49, 0x5e),
    ];
    PEERS[i % PEERS.len()]
}

/// Draws `suite` into `path`.
pub fn draw(suite: &Suite<'_>, path: &Path) -> Result<(), String> {
    register_font()?;
    let n = suite.metrics.len().max(1);
    let cols = n.min(3);
    let rows = n.div_ceil(cols);
    let (w, h) = ((460 * cols as u32).max(720), 340 * rows as u32 + 40);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (title, body) = root.split_vertically(40);
    title
        .titled(&format!("berth bench: {} (median, whiskers min–max)", suite.name), ("sans-serif", 22))
        .map_err(|e| e.to_string())?;
    let panels = body.split_evenly((rows, cols));
    for ((metric, recs), panel) in suite.metrics.iter().zip(panels.iter()) {
        let unit = recs.first().map(|r| r.unit.as_str()).unwrap_or("");
        let hib = recs.first().is_some_and(|r| r.higher_is_better);
        let tools: Vec<&String> = suite.tools.iter().filter(|t| recs.iter().any(|r| &&r.tool == t)).collect();
        let top = recs.iter().filter_map(|r| r.max.or(r.median)).fold(0.0f64, f64::max).max(1e-9) * 1.25;
        let caption = format!("{metric} ({unit}, {} is better)", if hib { "higher" } else { "lower" });
        let mut chart = ChartBuilder::on(panel)
            .caption(caption, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(8)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..tools.len().max(1) as f64, 0f64..top)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .disable_x_axis()
            .y_labels(6)
            .y_label_formatter(&|v| fmt_num(*v))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, tool) in tools.iter().enumerate() {
            let Some(r) = recs.iter().find(|r| &&r.tool == tool) else { continue };
            let x = i as f64;
            let c = colour(tool, suite.tools.iter().position(|t| t == *tool).unwrap_or(i));
            let label_style = ("sans-serif", 13).into_font().color(&BLACK);
            match r.median {
                Some(m) => {
                    chart
                        .draw_series(std::iter::once(Rectangle::new([(x + 0.18, 0.0), (x + 0.82, m)], c.filled())))
                        .map_err(|e| e.to_string())?;
                    if let (Some(lo), Some(hi)) = (r.min, r.max) {
                        let k = BLACK.stroke_width(2);
                        let whisker = vec![
                            PathElement::new(vec![(x + 0.5, lo), (x + 0.5, hi)], k),
                            PathElement::new(vec![(x + 0.38, lo), (x + 0.62, lo)], k),
                            PathElement::new(vec![(x + 0.38, hi), (x + 0.62, hi)], k),
                        ];
                        chart.draw_series(whisker).map_err(|e| e.to_string())?;
                    }
                    let above = r.max.unwrap_or(m).max(m) + top * 0.02;
                    chart
                        .draw_series(std::iter::once(Text::new(format!("{} {}", fmt_num(m), unit), (x + 0.2, above + top * 0.07), label_style.clone())))
                        .map_err(|e| e.to_string())?;
                }
                None => {
                    chart
                        .draw_series(std::iter::once(Text::new("failed".to_string(), (x + 0.25, top * 0.12), ("sans-serif", 13).into_font().color(&RED))))
                        .map_err(|e| e.to_string())?;
                }
            }
            chart
                .draw_series(std::iter::once(Text::new(tool.to_string(), (x + 0.2, top * 0.99), ("sans-serif", 14).into_font().color(&c))))
                .map_err(|e| e.to_string())?;
        }
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
