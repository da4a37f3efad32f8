import Foundation

/// Step time of ``GRPOBenchmark`` against one dimension at a time (group
/// size, completion length, model width, depth), the others at the
/// reference shape; each curve with its log-log slope and the physical floor
/// (the step's FLOPs at the FMA peak measured in the same run) on the same
/// axes, written as SVG files.
public struct CostCurves {
    public struct Sweep: Sendable {
        public var name: String, file: String, axis: String
        public var values: [Int]
        public var apply: @Sendable (inout GRPOBenchmark.Shape, Int) -> Void
    }

    public static let sweeps: [Sweep] = [
        Sweep(name: "group size", file: "cost-group-size.svg", axis: "completions per prompt (G)", values: [2, 4, 8, 16, 32]) {
            $0.groupSize = $1
        },
        Sweep(name: "completion length", file: "cost-completion-length.svg", axis: "new tokens", values: [4, 8, 16, 32]) {
            $0.newTokens = $1
        },
        Sweep(name: "width", file: "cost-width.svg", axis: "d_model (MLP 4x)", values: [32, 64, 128, 256]) {
            $0.dModel = $1
        },
        Sweep(name: "depth", file: "cost-depth.svg", axis: "layers", values: [1, 2, 4, 8]) { $0.layers = $1 },
    ]

    public struct Point: Sendable {
        public var x: Int
        public var step: Double, floor: Double
    }

    public var threads: Int
    public var steps: Int

    public init(threads: Int, steps: Int) {
        self.threads = threads
        self.steps = steps
    }

    /// Least-squares slope of log y against log x.
    public static func slope(_ points: [(Double, Double)]) -> Double {
        let xs = points.map { log($0.0) }, ys = points.map { log($0.1) }
        let mx = xs.reduce(0, +) / Double(xs.count), my = ys.reduce(0, +) / Double(ys.count)
        let sxy = zip(xs, ys).map { ($0 - mx) * ($1 - my) }.reduce(0, +)
        let sxx = xs.map { ($0 - mx) * ($0 - mx) }.reduce(0, +)
        return sxx == 0 ? 0 : sxy / sxx
    }

    /// Measures every sweep, writes its SVG into `directory`, and returns a
    /// Markdown table of the points and slopes. `progress` gets one line per point.
    public func run(directory: String, progress: (String) -> Void) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var table = "| sweep | x | step ms | floor ms | step / floor |\n|---|---|---|---|---|\n"
        var slopes: [String] = []
        for sweep in Self.sweeps {
            var points: [Point] = []
            for value in sweep.values {
                var shape = GRPOBenchmark.Shape()
                sweep.apply(&shape, value)
                let r = try GRPOBenchmark(shape: shape, threads: threads, steps: steps).measure()
                points.append(Point(x: value, step: r.step, floor: r.floor))
                progress(String(format: "%@ %d: step %.1f ms, floor %.1f ms", sweep.name, value, r.step * 1000, r.floor * 1000))
                table += String(format: "| %@ | %d | %.1f | %.2f | %.1f |\n", sweep.name, value, r.step * 1000,
                                r.floor * 1000, r.step / r.floor)
            }
            let stepSlope = Self.slope(points.map { (Double($0.x), $0.step) })
            let floorSlope = Self.slope(points.map { (Double($0.x), $0.floor) })
            slopes.append(String(format: "| %@ | %.2f | %.2f |", sweep.name, stepSlope, floorSlope))
            let svg = Self.svg(title: "GRPO step time against \(sweep.name)", axis: sweep.axis, points: points,
                               stepSlope: stepSlope, floorSlope: floorSlope)
            try svg.write(toFile: (directory as NSString).appendingPathComponent(sweep.file), atomically: true, encoding: .utf8)
        }
        return table + "\n| sweep | slope of step time | slope of floor |\n|---|---|---|\n" + slopes.joined(separator: "\n") + "\n"
    }

    /// A log-log chart: measured step times (dots and line) and the floor (dashed).
    static func svg(title: String, axis: String, points: [Point], stepSlope: Double, floorSlope: Double) -> String {
        let width = 560.0, height = 360.0, left = 70.0, right = 20.0, top = 40.0, bottom = 50.0
        let xs = points.map { log10(Double($0.x)) }
        let ys = points.flatMap { [log10($0.step * 1000), log10($0.floor * 1000)] }
        let x0 = xs.min()!, x1 = max(xs.max()!, x0 + 1e-9)
        let y0 = floor(ys.min()!), y1 = max(ceil(ys.max()!), y0 + 1)
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * (width - left - right) }
        func py(_ y: Double) -> Double { height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom) }
        func polyline(_ values: [Double], style: String) -> String {
            let coordinates = zip(xs, values).map { String(format: "%.1f,%.1f", px($0), py($1)) }.joined(separator: " ")
            return "<polyline fill=\"none\" \(style) points=\"\(coordinates)\"/>"
        }
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(Int(width / 2))" y="20" text-anchor="middle" font-size="14">\(title)</text>

            """
        for decade in Int(y0)...Int(y1) {
            let y = py(Double(decade))
            out += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>", left, width - right, y, y)
            out += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g ms</text>\n", left - 6, y + 4, pow(10, Double(decade)))
        }
        for point in points {
            let x = px(log10(Double(point.x)))
            out += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", x, x, top, height - bottom)
            out += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n", x, height - bottom + 16, point.x)
        }
        out += "<text x=\"\(Int((left + width - right) / 2))\" y=\"\(Int(height - 12))\" text-anchor=\"middle\">\(axis) (log scale)</text>\n"
        out += polyline(points.map { log10($0.step * 1000) }, style: "stroke=\"#1f5fbf\" stroke-width=\"2\"") + "\n"
        out += polyline(points.map { log10($0.floor * 1000) }, style: "stroke=\"#888\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\"") + "\n"
        for point in points {
            out += String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"#1f5fbf\"/>\n",
                          px(log10(Double(point.x))), py(log10(point.step * 1000)))
        }
        out += String(format: "<text x=\"%.1f\" y=\"%.1f\" fill=\"#1f5fbf\">measured step time, slope %.2f</text>\n", left + 10, top + 14, stepSlope)
        out += String(format: "<text x=\"%.1f\" y=\"%.1f\" fill=\"#666\">physical floor (FLOPs / measured FMA peak), slope %.2f</text>\n",
                      left + 10, top + 30, floorSlope)
        return out + "</svg>\n"
    }
}
