//! Drawing panels with plotters onto PNG files.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Line, Panel, SeriesMap};
use crate::font::FAMILY;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Distinguishable colours (the common "category10" palette).
const PALETTE: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
];

fn err(path: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw {}: {e}", path.display())
}

/// Writes one panel as its own PNG.
pub(super) fn single(path: &Path, panel: &Panel, data: &SeriesMap) -> Result<()> {
    let root = BitMapBackend::new(path, (1000, 600)).into_drawing_area();
    draw_panel(&root, panel, data).map_err(|e| err(path, e))?;
    root.present().map_err(|e| err(path, e))
}

/// Writes all panels in a 2×2 grid.
pub(super) fn grid(path: &Path, panels: &[Panel], data: &SeriesMap) -> Result<()> {
    let root = BitMapBackend::new(path, (1600, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path, e))?;
    for (area, panel) in root.split_evenly((2, 2)).iter().zip(panels) {
        draw_panel(area, panel, data).map_err(|e| err(path, e))?;
    }
    root.present().map_err(|e| err(path, e))
}

/// Min and max over `values`, padded so flat or single-point data still shows.
fn range(values: impl Iterator<Item = f64>, unit: bool) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if unit && lo >= 0.0 && hi <= 1.0 {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        lo.abs().max(1.0) * 0.1
    };
    (lo - pad, hi + pad)
}

/// Tick text without trailing zeros: `400`, `0.25`, not `400.0`.
fn tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

fn points<'a>(data: &'a SeriesMap, key: &str) -> &'a [(f64, f64)] {
    data.get(key).map(Vec::as_slice).unwrap_or(&[])
}

/// Upper and lower edges of a ±std band (only steps that have both values).
fn band(data: &SeriesMap, line: &Line) -> Vec<(f64, f64, f64)> {
    let Some(std_key) = &line.band else {
        return Vec::new();
    };
    let std = points(data, std_key);
    points(data, &line.key)
        .iter()
        .filter_map(|&(x, y)| {
            let s = std.iter().find(|p| p.0 == x)?.1;
            Some((x, y - s, y + s))
        })
        .collect()
}

fn draw_panel(area: &Area, panel: &Panel, data: &SeriesMap) -> Result<()> {
    area.fill(&WHITE)?;
    if panel.lines.is_empty() {
        let (w, h) = area.dim_in_pixel();
        area.draw(&Text::new(
            format!("{}: no data", panel.title),
            (w as i32 / 2 - 120, h as i32 / 2),
            (FAMILY, 22).into_font().color(&RGBColor(120, 120, 120)),
        ))?;
        return Ok(());
    }
    let all = || panel.lines.iter().flat_map(|l| points(data, &l.key).iter());
    let (x0, x1) = range(all().map(|p| p.0), false);
    let x0 = x0.max(0.0).min(x1 - 1.0);
    let primary = || panel.lines.iter().filter(|l| !l.secondary);
    let bands: Vec<Vec<(f64, f64, f64)>> = primary().map(|l| band(data, l)).collect();
    let (y0, y1) = range(
        primary()
            .flat_map(|l| points(data, &l.key).iter().map(|p| p.1))
            .chain(bands.iter().flatten().flat_map(|b| [b.1, b.2])),
        panel.unit,
    );
    let has_secondary = panel.lines.iter().any(|l| l.secondary);
    let (z0, z1) = range(
        panel
            .lines
            .iter()
            .filter(|l| l.secondary)
            .flat_map(|l| points(data, &l.key).iter().map(|p| p.1)),
        true,
    );

    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, (FAMILY, 24))
        .margin(14)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .right_y_label_area_size(if has_secondary { 72 } else { 0 })
        .build_cartesian_2d(x0..x1, y0..y1)?
        .set_secondary_coord(x0..x1, z0..z1);
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(panel.y_label)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| tick(*v))
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 17))
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()?;
    if has_secondary {
        chart
            .configure_secondary_axes()
            .y_desc(panel.y2_label)
            .y_label_formatter(&|v| tick(*v))
            .label_style((FAMILY, 15))
            .axis_desc_style((FAMILY, 17))
            .draw()?;
    }

    for (i, line) in panel.lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts = points(data, &line.key).to_vec();
        let style = color.stroke_width(2);
        let markers = line.markers || pts.len() == 1;
        let legend = move |(x, y): (i32, i32)| {
            PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(3))
        };
        if line.secondary {
            chart
                .draw_secondary_series(LineSeries::new(pts.clone(), style))?
                .label(line.label.as_str())
                .legend(legend);
            if markers {
                chart.draw_secondary_series(
                    pts.iter().map(|&p| Circle::new(p, 4, color.filled())),
                )?;
            }
            continue;
        }
        let edges = band(data, line);
        if edges.len() > 1 {
            let outline: Vec<(f64, f64)> = edges
                .iter()
                .map(|b| (b.0, b.2))
                .chain(edges.iter().rev().map(|b| (b.0, b.1)))
                .collect();
            chart.draw_series(std::iter::once(Polygon::new(
                outline,
                color.mix(0.18).filled(),
            )))?;
        }
        chart
            .draw_series(LineSeries::new(pts.clone(), style))?
            .label(line.label.as_str())
            .legend(legend);
        if markers {
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .label_font((FAMILY, 15))
        .draw()?;
    Ok(())
}
