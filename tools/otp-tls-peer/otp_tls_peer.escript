#!/usr/bin/env escript
%%! -noshell +S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none
%% An Erlang/OTP ssl peer for GenTCP's TLS tests, driven line by line over stdin/stdout.
%%
%% Usage: otp_tls_peer.escript server|client Key=Value...
%%   port=N            server: the port to listen on (0: any; the port is printed); client: to connect to
%%   ip=A.B.C.D        server: the address to listen on (default 127.0.0.1)
%%   host=H            client: the host to connect to (default 127.0.0.1; a name is sent as SNI)
%%   certfile=F keyfile=F cacertfile=F   PEM files (any may be left out)
%%   versions=tlsv1.3,tlsv1.2           (default: OTP's)
%%   alpn=h2,http/1.1  server: alpn_preferred_protocols; client: alpn_advertised_protocols
%%   verify=verify_peer|verify_none     fail_if_no_peer_cert=true|false (server)
%%   sni=NAME|disable  client: server_name_indication
%%   active=false|true|once|N           the socket's active mode after the handshake (default false)
%%   starttls=true     STARTTLS: plain gen_tcp first (the client sends `STARTTLS\r\n`, the server
%%                     answers `OK\r\n`), then ssl:handshake(TcpSocket, ...) / ssl:connect(TcpSocket, ...)
%%
%% Output lines (stdout): `listening PORT`, then `handshake ok VERSION ALPN PEERCERT SNI`,
%% `handshake ok_then_error REASON` (connect returned {ok, S} but the connection was already gone)
%% or `handshake error REASON`, then one line per command. REASON is `alert NAME generated|received`
%% for a TLS alert, else the term printed on one line (`closed`, `timeout`, ...).
%%
%% Commands (stdin, one per line), each answered by one line:
%%   send TEXT              ssl:send of TEXT (up to the end of the line)       -> ok | error R
%%   sendpattern N          N bytes, byte i = i rem 251                         -> ok | error R
%%   recv N T               ssl:recv(S, N, T)                                   -> data HEX | error R
%%   sink N T               recv(S,0,T) until N bytes or an error               -> sink COUNT SHA256 END
%%   echo T                 recv(S,0,T)/send until an error                     -> echoed COUNT END
%%   messages K T           setopts active; collect up to K messages (T ms each): one line
%%                          `messages M1;M2;...` with `ssl LEN`, `ssl_closed`, `ssl_error R`, `ssl_passive`
%%   setopts active false|true|once|N                                           -> ok | error R
%%   shutdown write|read|read_write                                             -> ok | error R
%%   close                                                                      -> ok
%%   renegotiate            ssl:renegotiate(S) (TLS 1.2)                        -> ok | error R
%%   update_keys write|read_write   ssl:update_keys(S, Type) (TLS 1.3)          -> ok | error R
%%   quit                   prints `bye` and exits
%% Names only what the tests' loopback addresses give it; never resolves anything else.
%% One scheduler that sleeps when idle (the %%! line): a test peer needs no more, and the tests
%% run on small shared machines.

%% Compiled, not interpreted: building a 1 MiB pattern in erl_eval takes seconds.
-mode(compile).

main([Mode | Args]) ->
    process_flag(trap_exit, false),
    {ok, _} = application:ensure_all_started(ssl),
    Opts = parse(Args),
    case Mode of
        "server" -> server(Opts);
        "client" -> client(Opts)
    end;
main(_) ->
    io:format(standard_error, "usage: otp_tls_peer.escript server|client key=value...~n", []),
    halt(2).

parse(Args) ->
    maps:from_list([begin [K, V] = string:split(A, "="), {K, V} end || A <- Args]).

tls_opts(Opts, Role) ->
    Files = [{list_to_atom(K), V} || {K, V} <- maps:to_list(Opts),
                                     lists:member(K, ["certfile", "keyfile", "cacertfile"])],
    Versions = case maps:find("versions", Opts) of
                   {ok, Vs} -> [{versions, [list_to_atom(V) || V <- string:split(Vs, ",", all)]}];
                   error -> []
               end,
    Alpn = case maps:find("alpn", Opts) of
               {ok, As} ->
                   Protos = [list_to_binary(P) || P <- string:split(As, ",", all)],
                   case Role of
                       server -> [{alpn_preferred_protocols, Protos}];
                       client -> [{alpn_advertised_protocols, Protos}]
                   end;
               error -> []
           end,
    Verify = case maps:find("verify", Opts) of
                 {ok, V} -> [{verify, list_to_atom(V)}];
                 error -> []
             end,
    Fail = case maps:find("fail_if_no_peer_cert", Opts) of
               {ok, F} -> [{fail_if_no_peer_cert, list_to_atom(F)}];
               error -> []
           end,
    Sni = case maps:find("sni", Opts) of
              {ok, "disable"} -> [{server_name_indication, disable}];
              {ok, Name} -> [{server_name_indication, Name}];
              error -> []
          end,
    [binary, {active, false}, {log_level, none}] ++ Files ++ Versions ++ Alpn ++ Verify ++ Fail ++ Sni.

active_value(Opts) ->
    case maps:find("active", Opts) of
        {ok, A} -> parse_active(A);
        error -> false
    end.

parse_active("false") -> false;
parse_active("true") -> true;
parse_active("once") -> once;
parse_active(N) -> list_to_integer(N).

server(#{"starttls" := "true"} = Opts) ->
    Port = list_to_integer(maps:get("port", Opts, "0")),
    {ok, L} = gen_tcp:listen(Port, [binary, {active, false}, {ip, {127, 0, 0, 1}}, {reuseaddr, true}]),
    {ok, Actual} = inet:port(L),
    say("listening ~w", [Actual]),
    {ok, T} = gen_tcp:accept(L, 120000),
    {ok, <<"STARTTLS\r\n">>} = gen_tcp:recv(T, 10, 120000),
    ok = gen_tcp:send(T, "OK\r\n"),
    after_handshake(ssl:handshake(T, upgrade_opts(Opts, server), 120000), Opts);
server(Opts) ->
    Port = list_to_integer(maps:get("port", Opts, "0")),
    {ok, Ip} = inet:parse_ipv4_address(maps:get("ip", Opts, "127.0.0.1")),
    {ok, L} = ssl:listen(Port, [{ip, Ip}, {reuseaddr, true} | tls_opts(Opts, server)]),
    {ok, {_, Actual}} = ssl:sockname(L),
    say("listening ~w", [Actual]),
    {ok, T} = ssl:transport_accept(L, 120000),
    case ssl:handshake(T, 120000) of
        {ok, S} ->
            report_handshake(S),
            _ = ssl:setopts(S, [{active, active_value(Opts)}]),
            commands(S);
        {error, R} ->
            say("handshake error ~s", [reason(R)]),
            commands(none)
    end.

client(#{"starttls" := "true"} = Opts) ->
    Port = list_to_integer(maps:get("port", Opts)),
    {ok, T} = gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}], 120000),
    ok = gen_tcp:send(T, "STARTTLS\r\n"),
    {ok, <<"OK\r\n">>} = gen_tcp:recv(T, 4, 120000),
    after_handshake(ssl:connect(T, upgrade_opts(Opts, client), 120000), Opts);
client(Opts) ->
    Port = list_to_integer(maps:get("port", Opts)),
    Host = case maps:get("host", Opts, "127.0.0.1") of
               "127.0.0.1" -> {127, 0, 0, 1};
               Name -> Name
           end,
    case ssl:connect(Host, Port, tls_opts(Opts, client), 120000) of
        {ok, S} ->
            report_handshake(S),
            _ = ssl:setopts(S, [{active, active_value(Opts)}]),
            commands(S);
        {error, R} ->
            say("handshake error ~s", [reason(R)]),
            commands(none)
    end.

%% STARTTLS: the TLS options alone (the gen_tcp socket is binary and passive already, and the
%% TLS socket inherits that).
upgrade_opts(Opts, Role) ->
    [O || O <- tls_opts(Opts, Role), O =/= binary, O =/= {active, false}].

after_handshake({ok, S}, Opts) ->
    report_handshake(S),
    _ = ssl:setopts(S, [{active, active_value(Opts)}]),
    commands(S);
after_handshake({error, R}, _) ->
    say("handshake error ~s", [reason(R)]),
    commands(none).

report_handshake(S) ->
    case ssl:connection_information(S, [protocol, sni_hostname]) of
        {ok, Info} -> report_handshake(S, Info);
        %% A TLS 1.3 client whose certificate the server refused: connect returned {ok, S}, and
        %% the connection may be gone before the first call on it.
        {error, R} -> say("handshake ok_then_error ~s", [reason(R)])
    end.

report_handshake(S, Info) ->
    Alpn = case ssl:negotiated_protocol(S) of
               {ok, P} -> binary_to_list(P);
               {error, E} -> atom_to_list(E)
           end,
    Cert = case ssl:peercert(S) of
               {ok, _} -> "peercert";
               {error, no_peercert} -> "no_peercert";
               {error, E2} -> io_lib:format("~0p", [E2])
           end,
    Sni = case proplists:get_value(sni_hostname, Info) of
              undefined -> "no_sni";
              N -> N
          end,
    say("handshake ok ~s ~s ~s ~s", [proplists:get_value(protocol, Info), Alpn, Cert, Sni]).

commands(S) ->
    case io:get_line("") of
        eof -> halt(0);
        {error, _} -> halt(0);
        Line ->
            Text = string:trim(Line, trailing, "\r\n"),
            run(string:split(Text, " "), S),
            commands(S)
    end.

run(["quit"], _) -> say("bye", []), halt(0);
run(_, none) -> say("error no_socket", []);
run(["send", Text], S) -> result(ssl:send(S, Text));
run(["sendpattern", N], S) -> result(ssl:send(S, pattern(list_to_integer(N))));
run(["recv", Args], S) ->
    [N, T] = string:split(Args, " "),
    case ssl:recv(S, list_to_integer(N), list_to_integer(T)) of
        {ok, Data} -> say("data ~s", [hex(Data)]);
        {error, R} -> say("error ~s", [reason(R)])
    end;
run(["sink", Args], S) ->
    [N, T] = string:split(Args, " "),
    {Count, Hash, End} = sink(S, list_to_integer(N), list_to_integer(T), 0, crypto:hash_init(sha256)),
    say("sink ~w ~s ~s", [Count, hex(crypto:hash_final(Hash)), End]);
run(["echo", T], S) ->
    {Count, End} = echo(S, list_to_integer(T), 0),
    say("echoed ~w ~s", [Count, End]);
run(["messages", Args], S) ->
    [K, T] = string:split(Args, " "),
    say("messages ~s", [lists:join(";", collect(S, list_to_integer(K), list_to_integer(T)))]);
run(["setopts", "active " ++ A], S) -> result(ssl:setopts(S, [{active, parse_active(A)}]));
run(["shutdown", How], S) -> result(ssl:shutdown(S, list_to_atom(How)));
run(["close"], S) -> result(ssl:close(S));
run(["renegotiate"], S) -> result(ssl:renegotiate(S));
run(["update_keys", Type], S) -> result(ssl:update_keys(S, list_to_atom(Type)));
run(Other, _) -> say("error unknown_command ~0p", [Other]).

sink(_, N, _, Count, Hash) when Count >= N -> {Count, Hash, "ok"};
sink(S, N, T, Count, Hash) ->
    case ssl:recv(S, 0, T) of
        {ok, Data} -> sink(S, N, T, Count + byte_size(Data), crypto:hash_update(Hash, Data));
        {error, R} -> {Count, Hash, reason(R)}
    end.

echo(S, T, Count) ->
    case ssl:recv(S, 0, T) of
        {ok, Data} ->
            case ssl:send(S, Data) of
                ok -> echo(S, T, Count + byte_size(Data));
                {error, R} -> {Count, "send " ++ reason(R)}
            end;
        {error, R} -> {Count, reason(R)}
    end.

collect(_, 0, _) -> [];
collect(S, K, T) ->
    receive
        {ssl, S, Data} -> [io_lib:format("ssl ~w", [byte_size(Data)]) | collect(S, K - 1, T)];
        {ssl_closed, S} -> ["ssl_closed" | collect(S, K - 1, T)];
        {ssl_error, S, R} -> ["ssl_error " ++ reason(R) | collect(S, K - 1, T)];
        {ssl_passive, S} -> ["ssl_passive" | collect(S, K - 1, T)]
    after T -> ["timeout"]
    end.

result(ok) -> say("ok", []);
result({error, R}) -> say("error ~s", [reason(R)]).

%% `alert NAME generated|received` for a TLS alert (the side is in OTP's text), else the term.
reason({tls_alert, {Name, Text}}) ->
    Side = case string:find(Text, "received") of
               nomatch -> "generated";
               _ -> "received"
           end,
    io_lib:format("alert ~s ~s", [Name, Side]);
reason(R) -> io_lib:format("~0p", [R]).

pattern(N) -> << <<(I rem 251)>> || I <- lists:seq(0, N - 1) >>.

hex(Bin) -> [io_lib:format("~2.16.0b", [B]) || <<B>> <= Bin].

say(Format, Args) ->
    io:put_chars([io_lib:format(Format, Args), $\n]).
