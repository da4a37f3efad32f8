// One OpenAI-compatible /v1/chat/completions request with a deadline,
// retries with exponential backoff and jitter (Retry-After honoured), and an
// optional cache on disk keyed by the request's content.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import PrismDigest

/// What a request settles as, after its retries.
enum ChatOutcome {
    /// The model's reply text (from the cache or the server).
    case reply(String)
    /// Failed for good: why, and which report counter it was.
    case failed(String)
}

/// Settings of the client (from the plugin's config).
struct ChatSettings {
    var endpoint: URL
    var model: String
    var apiKey: String?
    var timeout: Double
    var maxRetries: Int
    var backoff: Double
    var maxBackoff: Double
    var temperature: Double
    var maxTokens: Int
    var cacheDirectory: String?
    var systemPrompt: String
}

/// Counters shared by the requests of one `assess` call (they run in parallel).
final class ReportCounters: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var promptTokens = 0, completionTokens = 0, requests = 0, retries = 0, cacheHits = 0
    private(set) var unparseable = 0, timeouts = 0, httpErrors = 0, connectionErrors = 0

    enum Failure { case timeout, http, connection }

    func count(_ failure: Failure) {
        lock.withLock {
            switch failure {
            case .timeout: timeouts += 1
            case .http: httpErrors += 1
            case .connection: connectionErrors += 1
            }
        }
    }

    func request(retry: Bool) { lock.withLock { requests += 1; if retry { retries += 1 } } }
    func cacheHit() { lock.withLock { cacheHits += 1 } }
    func unparseableAnswer() { lock.withLock { unparseable += 1 } }
    func usage(prompt: Int, completion: Int) { lock.withLock { promptTokens += prompt; completionTokens += completion } }
}

final class ChatClient: @unchecked Sendable {
    let settings: ChatSettings
    private let session: URLSession

    init(_ settings: ChatSettings) {
        self.settings = settings
        let configuration = URLSessionConfiguration.ephemeral
        // The deadline is send()'s wait. Foundation on Linux arms its own timer for
        // whole seconds (0.3 s became 0 ms: every attempt failed at once), so its
        // timeouts are only a backstop past ours (Decisions #58).
        configuration.timeoutIntervalForRequest = Self.backstop(settings.timeout)
        configuration.timeoutIntervalForResource = Self.backstop(settings.timeout)
        configuration.httpMaximumConnectionsPerHost = 64
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        session = URLSession(configuration: configuration)
    }

    deinit { session.invalidateAndCancel() }

    /// URLSession's timeout for a deadline of `seconds`: whole seconds, at least one past it.
    static func backstop(_ seconds: Double) -> Double { (seconds + 1).rounded(.up) }

    /// The request body: the same content gives the same bytes (sorted keys), so it keys the cache.
    func body(user: String) -> Data {
        var messages: [[String: String]] = []
        if !settings.systemPrompt.isEmpty { messages.append(["role": "system", "content": settings.systemPrompt]) }
        messages.append(["role": "user", "content": user])
        var object: [String: Any] = ["messages": messages, "temperature": settings.temperature,
                                     "max_tokens": settings.maxTokens, "stream": false]
        if !settings.model.isEmpty { object["model"] = settings.model }
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
    }

    /// Asks the model; retries timeouts, lost connections, 429, 5xx and
    /// malformed bodies up to maxRetries times.
    func ask(_ user: String, counters: ReportCounters) -> ChatOutcome {
        let payload = body(user: user)
        // Keyed by the request's content (model, messages, sampling settings), not by where it is
        // sent: a local server's port changes from run to run. One cache_dir per judge model.
        let key = SHA256.hex(Array(payload))
        if let cached = readCache(key), let reply = try? parse(cached, counters: nil) {
            counters.cacheHit()
            return .reply(reply)
        }
        var attempt = 0
        var last = ""
        while true {
            counters.request(retry: attempt > 0)
            let (result, retryAfter) = send(payload, counters: counters)
            switch result {
            case .success(let answer):
                writeCache(key, answer.body)
                return .reply(answer.reply)
            case .failure(let failure):
                last = failure.message
                guard failure.retryable, attempt < settings.maxRetries else {
                    let tries = attempt + 1
                    return .failed(last + (tries > 1 ? " (\(tries) attempts)" : ""))
                }
                var wait = Double.random(in: 0...min(settings.maxBackoff, settings.backoff * pow(2, Double(attempt))))
                if let retryAfter {
                    guard retryAfter <= settings.maxBackoff else {
                        return .failed(last + String(format: "; Retry-After %.0f s is longer than max_backoff_s", retryAfter))
                    }
                    wait = max(wait, retryAfter)
                }
                if wait > 0 { Thread.sleep(forTimeInterval: wait) }
                attempt += 1
            }
        }
    }

    struct AttemptFailure: Error {
        var message: String
        var retryable: Bool
    }

    /// One HTTP exchange within the deadline: the body and reply text of a
    /// 2xx answer that parses as a chat completion (its usage counted), or
    /// why not (counted in `counters`).
    private func send(_ payload: Data, counters: ReportCounters)
        -> (Result<(body: Data, reply: String), AttemptFailure>, Double?) {
        var request = URLRequest(url: settings.endpoint, timeoutInterval: Self.backstop(settings.timeout))
        request.httpMethod = "POST"
        request.httpBody = payload
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let key = settings.apiKey { request.setValue("Bearer \(key)", forHTTPHeaderField: "Authorization") }
        /// The completion handler's answer, handed from URLSession's thread to this one.
        final class Answer: @unchecked Sendable {
            var value: (Data?, URLResponse?, (any Error)?) = (nil, nil, nil)
        }
        let done = DispatchSemaphore(value: 0)
        let box = Answer()
        let task = session.dataTask(with: request) { data, response, error in
            box.value = (data, response, error)
            done.signal()
        }
        task.resume()
        if done.wait(timeout: .now() + settings.timeout) == .timedOut {
            // Not waited for: URLSession may call back only when the server finally
            // answers, and the deadline is the deadline. The late answer goes to `box`, unread.
            task.cancel()
            counters.count(.timeout)
            return (.failure(AttemptFailure(message: String(format: "no answer within %g s (timeout_s)", settings.timeout),
                                            retryable: true)), nil)
        }
        let (data, response, error) = box.value  // written before signal(), read after wait()
        if let error {
            let code = (error as? URLError)?.code
            if code == .timedOut || code == .cancelled {
                counters.count(.timeout)
                return (.failure(AttemptFailure(message: String(format: "no answer within %g s (timeout_s)", settings.timeout),
                                                retryable: true)), nil)
            }
            counters.count(.connection)
            return (.failure(AttemptFailure(message: "\(settings.endpoint.absoluteString): \(describe(error))", retryable: true)), nil)
        }
        guard let http = response as? HTTPURLResponse else {
            counters.count(.connection)
            return (.failure(AttemptFailure(message: "no HTTP response", retryable: true)), nil)
        }
        let body = data ?? Data()
        guard (200..<300).contains(http.statusCode) else {
            counters.count(.http)
            let snippet = String(decoding: body.prefix(200), as: UTF8.self).replacingOccurrences(of: "\n", with: " ")
            let retryable = http.statusCode == 429 || http.statusCode >= 500
            let retryAfter = (http.value(forHTTPHeaderField: "Retry-After")).flatMap(Self.retryAfterSeconds)
            return (.failure(AttemptFailure(message: "HTTP \(http.statusCode)" + (snippet.isEmpty ? "" : ": \(snippet)"),
                                            retryable: retryable)), retryAfter)
        }
        do {
            return (.success((body, try parse(body, counters: counters))), nil)
        } catch {
            counters.count(.http)
            return (.failure(AttemptFailure(message: "\(error)", retryable: true)), nil)
        }
    }

    /// The reply text of a chat completion body; counts its usage.
    private func parse(_ body: Data, counters: ReportCounters?) throws -> String {
        struct Malformed: Error, CustomStringConvertible { let description: String }
        guard !body.isEmpty else { throw Malformed(description: "an empty body") }
        guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
            throw Malformed(description: "a body that is not a JSON object (\(body.count) bytes)")
        }
        guard let choices = object["choices"] as? [[String: Any]], let message = choices.first?["message"] as? [String: Any],
              let content = message["content"] as? String else {
            throw Malformed(description: "a reply without choices[0].message.content")
        }
        if let counters, let usage = object["usage"] as? [String: Any] {
            counters.usage(prompt: (usage["prompt_tokens"] as? Int) ?? 0, completion: (usage["completion_tokens"] as? Int) ?? 0)
        }
        return content
    }

    /// Seconds from a Retry-After value: delta-seconds or an HTTP date.
    static func retryAfterSeconds(_ value: String) -> Double? {
        let text = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Double(text), seconds >= 0 { return seconds }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: text).map { max(0, $0.timeIntervalSinceNow) }
    }

    private func describe(_ error: Error) -> String {
        guard let url = error as? URLError else { return "\(error.localizedDescription)" }
        switch url.code {
        case .cannotConnectToHost: return "connection refused"
        case .networkConnectionLost: return "the connection was lost before the answer was complete"
        case .cannotFindHost: return "host not found"
        case .notConnectedToInternet: return "not connected"
        case .secureConnectionFailed: return "TLS handshake failed"
        default: return url.localizedDescription
        }
    }

    // MARK: - cache

    private func cachePath(_ key: String) -> String? {
        settings.cacheDirectory.map { $0 + "/" + key + ".json" }
    }

    private func readCache(_ key: String) -> Data? {
        cachePath(key).flatMap { FileManager.default.contents(atPath: $0) }
    }

    /// Written whole or not at all (a temporary file renamed into place).
    private func writeCache(_ key: String, _ data: Data) {
        guard let path = cachePath(key), let directory = settings.cacheDirectory else { return }
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let temporary = path + ".\(getpid()).\(UInt64.random(in: 0...UInt64.max)).tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data) else { return }
        if rename(temporary, path) != 0 { unlink(temporary) }
    }
}
