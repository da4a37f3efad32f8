import CLibFFI

#if canImport(Glibc)
import Glibc
#endif

/// A C function found by symbol and called through libffi with up to four
/// texts, its signature prepared once. Calls are never concurrent (the
/// reward and feedback contracts).
@safe final class ForeignFunction {
    let declaration: FunctionDeclaration
    private let address: UnsafeMutableRawPointer
    private let cif: UnsafeMutablePointer<ffi_cif>
    private let types: UnsafeMutablePointer<UnsafeMutablePointer<ffi_type>?>
    private let argumentLetters: [CChar]
    private let resultLetter: CChar
    /// `argumentLetters` in C memory, and the per-call argument arrays.
    private let letters: UnsafeMutablePointer<CChar>
    private let texts: UnsafeMutablePointer<UnsafePointer<CChar>?>
    private let lengths: UnsafeMutablePointer<Int>
    /// The NUL-terminated copies of `s` arguments, reused between calls.
    private var scratch = unsafe ScratchBuffer<UInt8>()

    private init(declaration: FunctionDeclaration, address: UnsafeMutableRawPointer) throws(PluginError) {
        self.declaration = declaration
        unsafe self.address = address
        unsafe cif = .allocate(capacity: 1)
        unsafe types = .allocate(capacity: Int(PRISM_FFI_MAX_PARAMETERS))
        argumentLetters = declaration.arguments.map { CChar(UInt8(ascii: $0.unicodeScalars.first!)) } + [0]
        resultLetter = CChar(UInt8(ascii: declaration.result.unicodeScalars.first!))
        unsafe letters = .allocate(capacity: argumentLetters.count)
        unsafe letters.initialize(from: argumentLetters, count: argumentLetters.count)
        unsafe texts = .allocate(capacity: FunctionDeclaration.inputs.count)
        unsafe lengths = .allocate(capacity: FunctionDeclaration.inputs.count)
        let status = unsafe prism_ffi_prepare(cif, types, resultLetter, letters)
        guard status == 0 else {
            throw PluginError(.badSignature, plugin: declaration.key,
                              reason: "libffi cannot prepare the signature \"\(declaration.signature)\" (status \(status))")
        }
    }

    deinit {
        unsafe cif.deallocate()
        unsafe types.deallocate()
        unsafe letters.deallocate()
        unsafe texts.deallocate()
        unsafe lengths.deallocate()
        unsafe scratch.deallocate()
    }

    /// Opens the library and finds the symbol (the declaration is already checked).
    static func load(_ declaration: FunctionDeclaration) throws(PluginError) -> ForeignFunction {
        let name = declaration.library
        // A bare file name is left to the dynamic loader's search, as dlopen does.
        let path = name.contains("/") ? absolutePath(name) : name
        if name.contains("/"), !regularFileExists(path) {
            throw PluginError(.fileMissing, plugin: declaration.key, reason: "library \(path) does not exist")
        }
        // The loading rules of plugins (who may write the file and its folder) hold for functions too.
        if name.contains("/") {
            do {
                try LoadRules.check(path)
            } catch {
                throw PluginError(error.code, plugin: declaration.key, reason: error.reason)
            }
        }
        let library: DynamicLibrary
        do {
            unsafe library = unsafe try DynamicLibrary.open(absolutePath: path)
        } catch {
            // dlerror() begins with the path, which the message already names.
            let reason = error.message.hasPrefix(path + ": ") ? String(error.message.dropFirst(path.count + 2)) : error.message
            throw PluginError(.notSharedObject, plugin: declaration.key, reason: "library \(path) does not load: \(reason)")
        }
        guard let address = unsafe library.symbol(declaration.symbol) else {
            throw PluginError(.missingSymbol, plugin: declaration.key,
                              reason: "library \(path) does not export the function '\(declaration.symbol)'")
        }
        return try unsafe ForeignFunction(declaration: declaration, address: address)
    }

    /// Calls the function once per item, with item `i`'s texts at
    /// `range(i, k)` of `bytes` for argument k (completion, reference,
    /// prompt, metadata JSON; the signature takes a prefix), and hands
    /// `body` the result as a number (and as an integer for i and l).
    /// Nothing is allocated per call once the scratch buffer has grown.
    func callEach(_ bytes: [UInt8], count: Int, range: (Int, Int) -> Range<Int>,
                  _ body: (Int, Double, Int64) throws -> Void) rethrows {
        let arity = argumentLetters.count - 1
        let integral = resultLetter == CChar(UInt8(ascii: "i")) || resultLetter == CChar(UInt8(ascii: "l"))
        try unsafe bytes.withUnsafeBufferPointer { input in
            // A non-null base even for empty input: the C side may read 0 bytes.
            let base = unsafe UnsafeRawPointer(input.baseAddress ?? UnsafePointer(emptyPointer()))
            for i in 0..<count {
                // s arguments get NUL-terminated copies; b arguments are passed in place.
                var needed = 0
                for k in 0..<arity where unsafe letters[k] == CChar(UInt8(ascii: "s")) { needed += range(i, k).count + 1 }
                let copies = unsafe scratch.reserve(needed)
                var offset = 0
                for k in 0..<arity {
                    let r = range(i, k)
                    unsafe lengths[k] = r.count
                    if unsafe letters[k] == CChar(UInt8(ascii: "s")) {
                        unsafe (copies + offset).update(from: (base + r.lowerBound).assumingMemoryBound(to: UInt8.self), count: r.count)
                        unsafe copies[offset + r.count] = 0
                        unsafe texts[k] = unsafe UnsafeRawPointer(copies + offset).assumingMemoryBound(to: CChar.self)
                        offset += r.count + 1
                    } else {
                        unsafe texts[k] = unsafe (base + r.lowerBound).assumingMemoryBound(to: CChar.self)
                    }
                }
                var real = Double.nan, integer: Int64 = 0
                unsafe prism_ffi_call(cif, address, resultLetter, letters, texts, lengths, &real, &integer)
                // An integer result is also a number (a reward of 1 from an int32).
                try body(i, integral ? Double(integer) : real, integer)
            }
        }
    }

    /// An answer outside the contract, as a plugin's would be reported.
    func invalidOutput(_ reason: String) -> PluginError {
        PluginError(.invalidOutput, plugin: "\(declaration.key) (\(declaration.symbol))", reason: reason)
    }
}
