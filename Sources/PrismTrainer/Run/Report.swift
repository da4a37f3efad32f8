import Foundation
import PrismCore

/// `report.html`: a self-contained page of SVG line charts over the steps of
/// one or more runs (reward, accuracy, held-out accuracy and step score, the
/// all-negative / diversified / dropped shares of groups, loss, KL).
public enum Report {
    /// A chart: a title and how to read its value from a metrics line.
    struct Chart: Sendable {
        var title: String
        var value: @Sendable ([String: Double]) -> Double?
    }

    static let charts: [Chart] = [
        Chart(title: "reward (mean, before diversification)") { $0[.reward] },
        Chart(title: "training accuracy") { $0[.accuracy] },
        Chart(title: "held-out accuracy (greedy)") { $0[.evalAccuracy] },
        Chart(title: "held-out step score (judge RTS)") { $0[.evalRts] },
        Chart(title: "share of groups all-negative") { share($0, .groupsAllNegative) },
        Chart(title: "share of groups diversified") { share($0, .groupsDiversified) },
        Chart(title: "share of groups with zero advantage") { share($0, .groupsZeroAdvantage) },
        Chart(title: "groups dropped per step") { $0[.groupsDropped] },
        Chart(title: "loss") { $0[.loss] },
        Chart(title: "KL to the reference") { $0[.kl] },
    ]

    static func share(_ m: [String: Double], _ key: Metric) -> Double? {
        guard let value = m[key], let total = m[.groupsTotal], total > 0 else { return nil }
        return value / total
    }

    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]

    /// Reads each run's metrics and writes the page to `path`.
    public static func write(runs: [RunDirectory], to path: String) throws {
        var series: [(name: String, lines: [(Int, [String: Double])])] = []
        for run in runs {
            series.append((URL(fileURLWithPath: run.path).lastPathComponent, try run.readMetrics().map { ($0.step, $0.values) }))
        }
        var html = """
            <!doctype html><html><head><meta charset="utf-8"><title>Prism report</title>
            <style>body{font-family:system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}
            .grid{display:flex;flex-wrap:wrap;gap:16px}.chart{border:1px solid #ddd;padding:8px}
            .legend span{display:inline-block;margin-right:16px}.legend i{display:inline-block;width:14px;height:3px;margin-right:6px;vertical-align:middle}
            </style></head><body><h1>Prism report</h1><p class="legend">
            """
        for (i, run) in series.enumerated() {
            html += "<span><i style=\"background:\(colors[i % colors.count])\"></i>\(escape(run.name)) (\(run.lines.count) steps)</span>"
        }
        html += "</p><div class=\"grid\">"
        for chart in charts {
            html += svg(chart, series)
        }
        html += "</div></body></html>\n"
        try Data(html.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    static func svg(_ chart: Chart, _ series: [(name: String, lines: [(Int, [String: Double])])]) -> String {
        let width = 420.0, height = 220.0, left = 48.0, bottom = 28.0, top = 24.0, right = 12.0
        let points = series.map { run in run.lines.compactMap { step, values in chart.value(values).flatMap { $0.isFinite ? (Double(step), $0) : nil } } }
        let all = points.joined()
        var out = "<div class=\"chart\"><svg width=\"\(Int(width))\" height=\"\(Int(height))\" xmlns=\"http://www.w3.org/2000/svg\">"
        out += "<text x=\"\(left)\" y=\"16\" font-size=\"13\">\(escape(chart.title))</text>"
        guard let minX = all.map(\.0).min(), let maxX = all.map(\.0).max(),
              var minY = all.map(\.1).min(), var maxY = all.map(\.1).max()
        else { return out + "<text x=\"\(left)\" y=\"110\" font-size=\"12\" fill=\"#888\">no data</text></svg></div>" }
        if maxY - minY < 1e-12 { minY -= 0.5; maxY += 0.5 }
        let sx = { (x: Double) in left + (maxX > minX ? (x - minX) / (maxX - minX) : 0.5) * (width - left - right) }
        let sy = { (y: Double) in top + (1 - (y - minY) / (maxY - minY)) * (height - top - bottom) }
        out += "<line x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(width - right)\" y2=\"\(height - bottom)\" stroke=\"#999\"/>"
        out += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(height - bottom)\" stroke=\"#999\"/>"
        for (value, y) in [(maxY, top), (minY, height - bottom)] {
            out += "<text x=\"\(left - 4)\" y=\"\(y + 4)\" font-size=\"10\" text-anchor=\"end\">\(format(value))</text>"
        }
        out += "<text x=\"\(left)\" y=\"\(height - 8)\" font-size=\"10\">step \(Int(minX))</text>"
        out += "<text x=\"\(width - right)\" y=\"\(height - 8)\" font-size=\"10\" text-anchor=\"end\">\(Int(maxX))</text>"
        for (i, run) in points.enumerated() where !run.isEmpty {
            let path = run.map { "\(String(format: "%.1f", sx($0.0))),\(String(format: "%.1f", sy($0.1)))" }.joined(separator: " ")
            out += "<polyline fill=\"none\" stroke=\"\(colors[i % colors.count])\" stroke-width=\"1.6\" points=\"\(path)\"/>"
            if run.count == 1 {
                out += "<circle cx=\"\(sx(run[0].0))\" cy=\"\(sy(run[0].1))\" r=\"3\" fill=\"\(colors[i % colors.count])\"/>"
            }
        }
        return out + "</svg></div>"
    }

    static func format(_ x: Double) -> String { abs(x) >= 100 ? String(format: "%.0f", x) : String(format: "%.3g", x) }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
