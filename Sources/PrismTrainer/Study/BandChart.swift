import Foundation

/// A standalone SVG line chart with one shaded 95% band per series.
public struct BandChart {
    public struct Series {
        public var name: String
        /// (x, mean, low, high), in increasing x.
        public var points: [(x: Double, mean: Double, low: Double, high: Double)]
        public init(name: String, points: [(x: Double, mean: Double, low: Double, high: Double)]) {
            self.name = name
            self.points = points
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    /// Fixed y range, or nil to fit the data.
    public var yRange: ClosedRange<Double>?

    public init(title: String, xLabel: String, yLabel: String, series: [Series], yRange: ClosedRange<Double>? = nil) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
        self.yRange = yRange
    }

    static let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
                         "#7f7f7f", "#bcbd22", "#393b79", "#ad494a"]

    /// The SVG document.
    public var svg: String {
        let width = 640.0, height = 380.0, left = 56.0, right = 170.0, top = 30.0, bottom = 44.0
        let all = series.flatMap(\.points).filter { $0.mean.isFinite }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\">"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"
        out += "<text x=\"\(left)\" y=\"18\" font-size=\"14\">\(Self.escape(title))</text>"
        guard let minX = all.map(\.x).min(), let maxX = all.map(\.x).max() else {
            return out + "<text x=\"\(left)\" y=\"120\" font-size=\"12\">no data</text></svg>\n"
        }
        var lowY = yRange?.lowerBound ?? all.map { $0.low.isFinite ? $0.low : $0.mean }.min()!
        var highY = yRange?.upperBound ?? all.map { $0.high.isFinite ? $0.high : $0.mean }.max()!
        if highY - lowY < 1e-12 { lowY -= 0.5; highY += 0.5 }
        let plotW = width - left - right, plotH = height - top - bottom
        func sx(_ x: Double) -> Double { left + (maxX > minX ? (x - minX) / (maxX - minX) : 0.5) * plotW }
        func sy(_ y: Double) -> Double { top + (1 - (min(max(y, lowY), highY) - lowY) / (highY - lowY)) * plotH }
        func p(_ x: Double, _ y: Double) -> String { String(format: "%.1f,%.1f", sx(x), sy(y)) }
        // Axes, ticks, labels.
        out += "<g stroke=\"#999\"><line x1=\"\(left)\" y1=\"\(top + plotH)\" x2=\"\(left + plotW)\" y2=\"\(top + plotH)\"/>"
        out += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(top + plotH)\"/></g>"
        for i in 0...4 {
            let fy = lowY + (highY - lowY) * Double(i) / 4, fx = minX + (maxX - minX) * Double(i) / 4
            out += "<text x=\"\(left - 5)\" y=\(String(format: "\"%.1f\"", sy(fy) + 4)) font-size=\"10\" text-anchor=\"end\">\(Self.tick(fy))</text>"
            out += "<text x=\(String(format: "\"%.1f\"", sx(fx))) y=\"\(top + plotH + 14)\" font-size=\"10\" text-anchor=\"middle\">\(Self.tick(fx))</text>"
        }
        out += "<text x=\"\(left + plotW / 2)\" y=\"\(height - 8)\" font-size=\"11\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>"
        out += "<text x=\"14\" y=\"\(top + plotH / 2)\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(top + plotH / 2))\">\(Self.escape(yLabel))</text>"
        for (i, s) in series.enumerated() {
            let color = Self.colors[i % Self.colors.count]
            let points = s.points.filter { $0.mean.isFinite }
            let banded = points.filter { $0.low.isFinite && $0.high.isFinite && $0.high > $0.low }
            if banded.count > 1 {
                let upper = banded.map { p($0.x, $0.high) }, lower = banded.reversed().map { p($0.x, $0.low) }
                out += "<polygon fill=\"\(color)\" fill-opacity=\"0.15\" stroke=\"none\" points=\"\((upper + lower).joined(separator: " "))\"/>"
            }
            if points.count == 1 {
                out += "<circle cx=\(String(format: "\"%.1f\"", sx(points[0].x))) cy=\(String(format: "\"%.1f\"", sy(points[0].mean))) r=\"3\" fill=\"\(color)\"/>"
            } else {
                out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.8\" points=\"\(points.map { p($0.x, $0.mean) }.joined(separator: " "))\"/>"
            }
            let ly = top + 8 + Double(i) * 16
            out += "<line x1=\"\(width - right + 10)\" y1=\"\(ly)\" x2=\"\(width - right + 28)\" y2=\"\(ly)\" stroke=\"\(color)\" stroke-width=\"3\"/>"
            out += "<text x=\"\(width - right + 33)\" y=\"\(ly + 4)\" font-size=\"11\">\(Self.escape(s.name))</text>"
        }
        return out + "</svg>\n"
    }

    /// Writes the SVG atomically.
    public func write(to path: String) throws {
        try Data(svg.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    static func tick(_ x: Double) -> String {
        abs(x) >= 1000 ? String(format: "%.3g", x) : abs(x) >= 10 ? String(format: "%.0f", x) : String(format: "%.2g", x)
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
