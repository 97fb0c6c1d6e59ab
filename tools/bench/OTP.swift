import CGenTCPShims
#if canImport(Glibc)
import Glibc
#endif

/// The third column: Erlang/OTP's own gen_tcp doing the same work as the GenTCP and raw runs,
/// against the same raw peers of this process (the bulk writer thread, the echo thread).
///
/// One `escript` runs for the whole benchmark (the BEAM starts once, with 2 schedulers, as
/// OTP's default on this machine) and takes commands on its stdin, one per line; it answers each
/// with `ok <nanoseconds> <deliveries>` or `error <term>`. The timed span is the one GenTCP's
/// receiver times: from just before the one-byte "go" to the last byte (bulk), or over every
/// round trip (ping-pong). CPU, context switches and faults of a run add the BEAM's (from
/// `/proc`) to this process's (the raw peer's thread).
final class OTPPeer: @unchecked Sendable {
    /// The script: gen_tcp with the options each case names, nothing else.
    static let script = #"""
        #!/usr/bin/env escript
        %%! +S 2
        %% gentcp-bench's OTP side (written by gentcp-bench at start; see tools/bench/OTP.swift).
        main(_) ->
            io:setopts(standard_io, [binary]),
            io:format("ready ~s~n", [erlang:system_info(otp_release)]),
            loop().

        loop() ->
            case io:get_line(standard_io, "") of
                eof -> ok;
                {error, _} -> ok;
                Line ->
                    Words = string:lexemes(string:trim(Line), " "),
                    Reply = try run(Words) of
                                {port, P} -> io_lib:format("port ~b", [P]);
                                {Ns, N} -> io_lib:format("ok ~b ~b", [Ns, N])
                            catch
                                Class:Reason -> io_lib:format("error ~p:~p", [Class, Reason])
                            end,
                    io:format("~s~n", [Reply]),
                    loop()
            end.

        int(B) -> binary_to_integer(B).

        %% bulk PORT TOTAL BUFFER passive|active|framed: connect to the raw writer, time "go" to
        %% the last byte; framed: 64-byte frames (4-byte length, body) read as recv(4), recv(Len).
        run([<<"bulk">>, P, T, B, Mode]) ->
            Active = Mode =:= <<"active">>,
            {ok, S} = gen_tcp:connect({127,0,0,1}, int(P), [binary, {active, Active}, {buffer, int(B)}]),
            T0 = erlang:monotonic_time(nanosecond),
            ok = gen_tcp:send(S, <<1>>),
            N = case Mode of
                    <<"active">> -> active(S, int(T), 0);
                    <<"framed">> -> framed(S, int(T), 0);
                    _ -> passive(S, int(T), 0)
                end,
            T1 = erlang:monotonic_time(nanosecond),
            gen_tcp:close(S),
            {T1 - T0, N};
        %% both TOTAL BUFFER: OTP at both ends, a sender process writing 64 KiB sends.
        run([<<"both">>, T, B]) ->
            Total = int(T),
            {ok, L} = gen_tcp:listen(0, [binary, {active, false}, {ip, {127,0,0,1}}]),
            {ok, Port} = inet:port(L),
            Self = self(),
            Sender = spawn_link(fun() ->
                {ok, A} = gen_tcp:accept(L),
                {ok, _} = gen_tcp:recv(A, 1),
                send(A, binary:copy(<<16#5A>>, 65536), Total),
                Self ! sent,
                receive done -> gen_tcp:close(A) end
            end),
            {ok, S} = gen_tcp:connect({127,0,0,1}, Port, [binary, {active, false}, {buffer, int(B)}]),
            T0 = erlang:monotonic_time(nanosecond),
            ok = gen_tcp:send(S, <<1>>),
            N = passive(S, Total, 0),
            T1 = erlang:monotonic_time(nanosecond),
            receive sent -> ok end,
            Sender ! done,
            gen_tcp:close(S),
            gen_tcp:close(L),
            {T1 - T0, N};
        %% pingpong PORT ROUNDS passive|once|framed: 64-byte messages to the raw echo thread,
        %% nodelay; framed: a 4-byte length (60) and its body, read back as recv(4), recv(60).
        run([<<"pingpong">>, P, R, Mode]) ->
            {ok, S} = gen_tcp:connect({127,0,0,1}, int(P), [binary, {active, false}, {nodelay, true}]),
            Msg = case Mode of
                      <<"framed">> -> <<60:32, (binary:copy(<<16#42>>, 60))/binary>>;
                      _ -> binary:copy(<<16#42>>, 64)
                  end,
            T0 = erlang:monotonic_time(nanosecond),
            N = rounds(S, Msg, int(R), Mode, 0),
            T1 = erlang:monotonic_time(nanosecond),
            gen_tcp:close(S),
            {T1 - T0, N};
        %% serve-echo | serve-bulk PER: the --scale server. Listens on an ephemeral port, replies
        %% `port N` at once; one acceptor process, one process per connection (passive, nodelay):
        %% echo recv(S, 64)/send until the end of stream, or after a one-byte "go" PER bytes in
        %% 64 KiB sends, then close. stop-serve closes the listener and ends the acceptor.
        run([<<"serve-echo">>]) -> serve(echo, 0);
        run([<<"serve-bulk">>, Per]) -> serve(bulk, int(Per));
        run([<<"stop-serve">>]) -> stop_serve(), {0, 0}.

        serve(Kind, Per) ->
            stop_serve(),
            {ok, L} = gen_tcp:listen(0, [binary, {active, false}, {nodelay, true}, {backlog, 1024},
                                         {reuseaddr, true}, {ip, {127,0,0,1}}]),
            {ok, Port} = inet:port(L),
            Chunk = binary:copy(<<16#5A>>, 65536),
            Acceptor = spawn(fun() -> accept_loop(L, Kind, Per, Chunk) end),
            put(serving, {L, Acceptor}),
            {port, Port}.

        stop_serve() ->
            case erase(serving) of
                undefined -> ok;
                {L, Acceptor} -> exit(Acceptor, kill), gen_tcp:close(L), ok
            end.

        accept_loop(L, Kind, Per, Chunk) ->
            case gen_tcp:accept(L) of
                {ok, S} ->
                    Pid = spawn(fun() -> receive {go, S} -> serve_one(Kind, S, Per, Chunk) end end),
                    case gen_tcp:controlling_process(S, Pid) of
                        ok -> Pid ! {go, S};
                        _ -> exit(Pid, kill), gen_tcp:close(S)
                    end,
                    accept_loop(L, Kind, Per, Chunk);
                {error, _} -> ok
            end.

        serve_one(echo, S, _Per, _Chunk) -> echo(S);
        serve_one(bulk, S, Per, Chunk) ->
            case gen_tcp:recv(S, 1) of
                {ok, _} -> catch send(S, Chunk, Per);
                _ -> ok
            end,
            gen_tcp:close(S).

        echo(S) ->
            case gen_tcp:recv(S, 64) of
                {ok, Data} ->
                    case gen_tcp:send(S, Data) of
                        ok -> echo(S);
                        _ -> gen_tcp:close(S)
                    end;
                {error, _} -> gen_tcp:close(S)
            end.

        passive(_S, Left, N) when Left =< 0 -> N;
        passive(S, Left, N) ->
            {ok, Data} = gen_tcp:recv(S, 0),
            passive(S, Left - byte_size(Data), N + 1).

        framed(_S, Left, N) when Left =< 0 -> N;
        framed(S, Left, N) ->
            {ok, <<Len:32>>} = gen_tcp:recv(S, 4),
            {ok, _} = gen_tcp:recv(S, Len),
            framed(S, Left - 4 - Len, N + 1).

        active(_S, Left, N) when Left =< 0 -> N;
        active(S, Left, N) ->
            receive
                {tcp, S, Data} -> active(S, Left - byte_size(Data), N + 1);
                {tcp_closed, S} -> exit({early_end_of_stream, Left});
                {tcp_error, S, Reason} -> exit(Reason)
            after 30000 -> exit(timeout)
            end.

        send(_A, _Chunk, Left) when Left =< 0 -> ok;
        send(A, Chunk, Left) when Left >= byte_size(Chunk) ->
            ok = gen_tcp:send(A, Chunk),
            send(A, Chunk, Left - byte_size(Chunk));
        send(A, Chunk, Left) ->
            ok = gen_tcp:send(A, binary:part(Chunk, 0, Left)).

        rounds(_S, _Msg, 0, _Mode, N) -> N;
        rounds(S, Msg, Left, <<"passive">>, N) ->
            ok = gen_tcp:send(S, Msg),
            {ok, <<_:64/binary>>} = gen_tcp:recv(S, 64),
            rounds(S, Msg, Left - 1, <<"passive">>, N + 1);
        rounds(S, Msg, Left, <<"framed">>, N) ->
            ok = gen_tcp:send(S, Msg),
            {ok, <<Len:32>>} = gen_tcp:recv(S, 4),
            {ok, _} = gen_tcp:recv(S, Len),
            rounds(S, Msg, Left - 1, <<"framed">>, N + 1);
        rounds(S, Msg, Left, <<"once">>, N) ->
            ok = gen_tcp:send(S, Msg),
            M = once(S, 64, 0),
            rounds(S, Msg, Left - 1, <<"once">>, N + M).

        once(_S, Left, M) when Left =< 0 -> M;
        once(S, Left, M) ->
            ok = inet:setopts(S, [{active, once}]),
            receive
                {tcp, S, Data} -> once(S, Left - byte_size(Data), M + 1);
                {tcp_closed, S} -> exit(early_end_of_stream)
            after 30000 -> exit(timeout)
            end.
        """#

    let pid: pid_t
    private let commands: UnsafeMutablePointer<FILE>
    private let replies: UnsafeMutablePointer<FILE>
    /// The OTP release the BEAM reported (e.g. "25").
    private(set) var release = ""

    /// Starts the escript, or returns why it cannot: `escript` is not installed, or the BEAM
    /// did not come up.
    /// `emulatorFlags` go after `+S 2` on the script's `%%!` line (e.g. `+sbwt none`, to see
    /// what the schedulers' busy wait buys).
    static func start(emulatorFlags: String = "") -> Swift.Result<OTPPeer, OTPUnavailable> {
        guard let escript = findInPath("escript") else { return .failure(OTPUnavailable(reason: "escript is not installed (apt install erlang-base)")) }
        var template = Array("/tmp/gentcp-bench-otp-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { return .failure(OTPUnavailable(reason: "cannot write the escript to /tmp")) }
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var source = script
        if !emulatorFlags.isEmpty {
            source = source.replacingFirst("%%! +S 2\n", with: "%%! +S 2 \(emulatorFlags)\n")
        }
        let text = Array(source.utf8)
        let written = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == text.count else { return .failure(OTPUnavailable(reason: "cannot write the escript to \(path)")) }

        var toChild: [Int32] = [0, 0], fromChild: [Int32] = [0, 0]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else { return .failure(OTPUnavailable(reason: "pipe failed")) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        for fd in toChild + fromChild { posix_spawn_file_actions_addclose(&actions, fd) }
        var child = pid_t()
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(escript), strdup(path), nil]
        defer { for a in argv { free(a) } }
        let rc = posix_spawn(&child, escript, &actions, nil, argv, environ)
        close(toChild[0])
        close(fromChild[1])
        guard rc == 0 else {
            close(toChild[1])
            close(fromChild[0])
            return .failure(OTPUnavailable(reason: "cannot start escript (error \(rc))"))
        }
        let commands = fdopen(toChild[1], "w")!, replies = fdopen(fromChild[0], "r")!
        let peer = OTPPeer(pid: child, commands: commands, replies: replies, path: path)
        guard let first = peer.readLine(), first.hasPrefix("ready ") else {
            peer.stop()
            return .failure(OTPUnavailable(reason: "the BEAM did not start (escript \(path))"))
        }
        peer.release = String(first.dropFirst(6))
        return .success(peer)
    }

    /// Starts the OTP side of a table and says so: `OTP <release>: gen_tcp in one escript BEAM
    /// (+S 2 <flags>), <detail>`, or why it was skipped. nil when skipped.
    static func startAndReport(emulatorFlags: String, detail: (OTPPeer) -> String) -> OTPPeer? {
        switch start(emulatorFlags: emulatorFlags) {
        case .success(let peer):
            say("OTP \(peer.release): gen_tcp in one escript BEAM (+S 2\(emulatorFlags.isEmpty ? "" : " " + emulatorFlags)), \(detail(peer))")
            return peer
        case .failure(let why):
            say("OTP: skipped (\(why.reason)).")
            return nil
        }
    }

    private let scriptPath: String

    private init(pid: pid_t, commands: UnsafeMutablePointer<FILE>, replies: UnsafeMutablePointer<FILE>, path: String) {
        self.pid = pid
        self.commands = commands
        self.replies = replies
        self.scriptPath = path
    }

    /// How long one command may take before the BEAM is taken for hung: far beyond any run
    /// here (the slowest, 1 GiB at 200 MB/s or 100k round trips at 6k/s, take seconds).
    static let replyLimitSeconds: Int32 = 600

    /// The BEAM's next reply line; nil when it exited, or when it sent nothing for
    /// ``replyLimitSeconds`` (then it is killed, so that a hung BEAM cannot hang the bench).
    /// Every command is answered by one line and one line is read per command, so `replies`
    /// holds nothing buffered when this starts waiting.
    private func readLine() -> String? {
        var ready = pollfd(fd: fileno(replies), events: Int16(POLLIN), revents: 0)
        var waited: Int32
        repeat { waited = poll(&ready, 1, Self.replyLimitSeconds * 1000) } while waited < 0 && errno == EINTR
        if waited == 0 {
            say("gentcp-bench: the OTP side sent nothing for \(Self.replyLimitSeconds) s; killing it")
            kill(pid, SIGKILL)
            return nil
        }
        var buffer = [CChar](repeating: 0, count: 4096)
        guard fgets(&buffer, Int32(buffer.count), replies) != nil else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs one command and returns the BEAM's timing, its deliveries (recv results or
    /// messages), and the CPU, switches and faults of the BEAM and of this process over it.
    func run(_ command: String) -> Sample {
        let beamBefore = ProcessCounters.read(pid), selfBefore = Snapshot.now()
        fputs(command + "\n", commands)
        fflush(commands)
        guard let reply = readLine() else { fatalError("gentcp-bench: the OTP side exited or hung during '\(command)'") }
        let selfAfter = Snapshot.now(), beamAfter = ProcessCounters.read(pid)
        let words = reply.split(separator: " ")
        guard words.count == 3, words[0] == "ok", let ns = Double(words[1]), let n = Int(words[2]) else {
            fatalError("gentcp-bench: the OTP side failed '\(command)': \(reply)")
        }
        let own = selfAfter - selfBefore
        return Sample(seconds: ns / 1e9, cpu: own.cpu + (beamAfter.cpu - beamBefore.cpu),
                      switches: own.switches + (beamAfter.switches - beamBefore.switches),
                      faults: own.faults + (beamAfter.faults - beamBefore.faults), deliveries: n)
    }

    /// Sends one command and returns the BEAM's reply line, or nil when the BEAM has gone or
    /// hung (never fatal: the --scale runs report it and go on).
    func request(_ command: String) -> String? {
        guard fputs(command + "\n", commands) >= 0, fflush(commands) == 0 else { return nil }
        return readLine()
    }

    /// The BEAM's resident memory in bytes (VmRSS), 0 when unreadable.
    func residentBytes() -> Int { Scale.residentBytes(pid) }

    /// Ends the BEAM (end of its stdin) and removes the script.
    func stop() {
        fclose(commands)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        fclose(replies)
        unlink(scriptPath)
    }

    /// The bulk receiver on OTP: gen_tcp `[binary, {active, A}, {buffer, B}]` reading from the
    /// raw writer thread; `mode` passive: `recv(S, 0)`, active: `{tcp, S, Data}` messages,
    /// framed: ``Frame``s from the writer, read as `recv(S, 4)` and `recv(S, Len)`.
    func bulk(total: Int, buffer: Int, mode: String) -> Sample {
        let (listener, port) = Raw.listen()
        let writer = Raw.bulkWriter(listener: listener, total: total, chunk: Bulk.writeSize, framed: mode == "framed")
        defer {
            writer.join()
            close(listener)
        }
        return run("bulk \(port) \(total) \(buffer) \(mode)")
    }

    /// OTP at both ends: a sender process with 64 KiB `gen_tcp:send`s, a passive receiver.
    func bothEnds(total: Int, buffer: Int) -> Sample {
        run("both \(total) \(buffer)")
    }

    /// The ping-pong client on OTP against the raw echo thread: `recv(S, 64)`, `{active, once}`,
    /// or `recv(S, 4)` and `recv(S, 60)` for a framed message.
    func pingPong(roundTrips: Int, mode: String) -> Sample {
        let (listener, port) = Raw.listen()
        let peer = Raw.echoPeer(listener: listener, size: PingPong.size)
        defer {
            peer.join()
            close(listener)
        }
        return run("pingpong \(port) \(roundTrips) \(mode)")
    }
}

struct OTPUnavailable: Error {
    var reason: String
}

/// CPU seconds, context switches and minor faults of another process, from `/proc`.
enum ProcessCounters {
    struct Reading {
        var cpu = 0.0
        var switches = 0
        var faults = 0
    }

    static func read(_ pid: pid_t) -> Reading {
        var r = Reading()
        // /proc/PID/stat: after the ")" of the command, field 3 is the state; minflt is field 10,
        // utime 14, stime 15 (in clock ticks), for every thread of the process.
        if let stat = contents("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") {
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 13 {
                let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
                r.faults = Int(fields[7]) ?? 0
                r.cpu = (Double(fields[11]) ?? 0) / ticks + (Double(fields[12]) ?? 0) / ticks
            }
        }
        // Context switches: per thread, in /proc/PID/task/TID/status.
        if let dir = opendir("/proc/\(pid)/task") {
            defer { closedir(dir) }
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                guard name.first?.isNumber == true, let status = contents("/proc/\(pid)/task/\(name)/status") else { continue }
                for line in status.split(separator: "\n") {
                    if line.hasPrefix("voluntary_ctxt_switches:") || line.hasPrefix("nonvoluntary_ctxt_switches:") {
                        r.switches += Int(line.split(separator: ":")[1].trimmingSpaces()) ?? 0
                    }
                }
            }
        }
        return r
    }

    static func contents(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension String {
    /// `self` with the first `target` replaced (no Foundation here).
    func replacingFirst(_ target: String, with replacement: String) -> String {
        let bytes = Array(utf8), pattern = Array(target.utf8)
        guard !pattern.isEmpty, bytes.count >= pattern.count else { return self }
        for i in 0...(bytes.count - pattern.count) where Array(bytes[i..<(i + pattern.count)]) == pattern {
            return String(decoding: bytes[..<i], as: UTF8.self) + replacement
                + String(decoding: bytes[(i + pattern.count)...], as: UTF8.self)
        }
        return self
    }
}

extension Substring {
    func trimmingSpaces() -> Substring {
        var s = self
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return s
    }
}

/// The first executable `name` on `PATH`.
func findInPath(_ name: String) -> String? {
    guard let path = getenv("PATH") else { return nil }
    for dir in String(cString: path).split(separator: ":") {
        let candidate = "\(dir)/\(name)"
        if access(candidate, X_OK) == 0 { return candidate }
    }
    return nil
}
