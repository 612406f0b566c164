-- stream:scanner(split): Wippy's stream scanner (after Go's bufio.Scanner),
-- lines, words, bytes and runes, on output that arrives in pieces too.
-- Byte escapes are decimal: Lua 5.1 has no \x.
local H = require("spec.helper")
local ex = H.native

local passes = H.passes

-- The tokens of `split` when `pieces` come out of `cat` one by one, 50 ms
-- apart (so that each arrives in a read of its own), as a Lua expression.
local function scan_pieces(split, pieces)
  local list = {}
  for i, piece in ipairs(pieces) do list[i] = string.format("%q", piece) end
  local out = passes([=[
    local p = exec.get("process:native"):exec({ "cat" })
    local sc = p:stdout_stream():scanner("]=] .. split .. [=[")
    p:start()
    coroutine.spawn(function()
      for _, piece in ipairs({ ]=] .. table.concat(list, ", ") .. [=[ }) do
        assert(p:write_stdin(piece))
        time.sleep(0.05)
      end
      p:close_stdin()
    end)
    local toks = {}
    while sc:scan() do toks[#toks + 1] = string.format("%q", sc:text()) end
    assert(sc:err() == nil, sc:err())
    assert(sc:text() == "")
    assert(p:wait() == 0)
    print("{" .. table.concat(toks, ", ") .. "}")
  ]=])
  return assert((loadstring or load)("return " .. out:gsub("OK\n$", "")))()
end

-- U+FFFD: what an invalid byte scans as in "runes" mode.
local R = "\239\191\189"

describe("stream:scanner(split) on output that arrives in pieces", function()
  it("lines: without \\n and a \\r before it; a line cut across reads; the last without newline", function()
    assert.same({ "one", "two", "", "x\ry", "three" },
      scan_pieces("lines", { "one\r\ntw", "o\n\n", "x\ry\r", "\nthr", "ee\r" }))
  end)

  it("words: split on ASCII and Unicode white space, none empty, a space cut across reads", function()
    -- U+00A0 (194 160), U+2009 (226 128 137, cut after 2 bytes), U+3000
    -- (227 128 128), U+0085 (194 133), U+1680 (225 154 128), U+205F
    -- (226 129 159); not spaces: U+200B (226 128 139), invalid bytes, é.
    assert.same({ "alpha", "beta", "gamma", "delta", "eps", "\255z", "a\226\128\139b", "caf\195\169",
                  "n", "o", "p" },
      scan_pieces("words", { "  alpha\tbe", "ta\n\n gamma\194\160delta\226\128", "\137eps\227\128\128 \255z\r\n",
                             "\v\fa\226\128\139b caf\195\169", "\194\133n\225\154\128o\226\129\159p", "  " }))
  end)

  it("bytes: one at a time, any byte", function()
    assert.same({ "a", "b", "c", "\0", "\255" }, scan_pieces("bytes", { "ab", "c", "\0\255" }))
  end)

  it("runes: UTF-8 characters cut across reads; each invalid byte is U+FFFD, as in Go", function()
    assert.same({ "h", "\195\169", "l", "l", "o", " ", "\226\130\172", "!", R, "\240\159\152\128",
                  R, R, R, R, R, "x", "\240\159\152\128", R, R },
      scan_pieces("runes", { "h\195", "\169llo \226\130", "\172!", "\255\240\159\152", "\128\192\175\237\160\128x\240",
                             "\159", "\152", "\128\226\130" }))
  end)
end)

describe("stream:scanner", function()
  it("defaults to lines, which share the stream's reader with read('l')", function()
    local p = ex:exec("printf 'a\\nb\\nc\\nd'")
    p:start()
    local s = p:stdout_stream()
    local sc = s:scanner()
    assert.equals("", sc:text())
    assert.is_true(sc:scan())
    assert.equals("a", sc:text())
    assert.equals("b", s:read("l"))
    assert.is_true(sc:scan())
    assert.equals("c", sc:text())
    assert.is_true(sc:scan())
    assert.equals("d", sc:text())
    assert.same({ false }, { sc:scan() })
    assert.equals("", sc:text())
    assert.is_nil(sc:err())
    assert.same({ false }, { sc:scan() })
    assert.equals(0, p:wait())
  end)

  it("lines: a \\r before the newline goes from lines served from the buffer too", function()
    local p = ex:exec("printf 'a\\r\\nb\\r\\n\\r\\nc\\rd\\r\\n\\r'")
    p:start()
    local sc = p:stdout_stream():scanner("lines")
    local got = {}
    while sc:scan() do got[#got + 1] = sc:text() end
    assert.same({ "a", "b", "", "c\rd", "" }, got)
    assert.equals(0, p:wait())
  end)

  it("counts every line and word of a long output", function()
    local p = ex:exec({ "seq", "1", "100000" })
    p:start()
    local sc = p:stdout_stream():scanner("lines")
    local n, last = 0, nil
    while sc:scan() do
      n = n + 1
      last = sc:text()
    end
    assert.equals(100000, n)
    assert.equals("100000", last)
    p:wait()
    local q = ex:exec("seq 1 50000 | paste -d ' ' - -")
    q:start()
    sc = q:stdout_stream():scanner("words")
    n = 0
    while sc:scan() do
      n = n + 1
      last = sc:text()
    end
    assert.equals(50000, n)
    assert.equals("50000", last)
    q:wait()
  end)

  it("returns false and the error, for good, when the stream fails (here: closed)", function()
    local p = ex:exec("echo a; echo b")
    p:start()
    local s = p:stdout_stream()
    for _, split in ipairs({ "lines", "words", "bytes", "runes" }) do
      local sc = s:scanner(split)
      s:close()
      local ok, err = sc:scan()
      assert.is_false(ok)
      assert.equals("scanner:scan: stream is closed", err)
      assert.equals(err, sc:err())
      assert.same({ false, err }, { sc:scan() })
      assert.equals("", sc:text())
    end
    p:wait()
  end)

  it("waits in a task without holding up the others", function()
    passes([=[
      local ex = exec.get("process:native")
      local done = channel.new(2)
      local t0 = time.now()
      for _ = 1, 2 do
        coroutine.spawn(function()
          local p = ex:exec("for i in 1 2 3; do echo $i; sleep 0.2; done")
          p:start()
          local sc = p:stdout_stream():scanner()
          local got = {}
          while sc:scan() do got[#got + 1] = sc:text() end
          done:send(table.concat(got, ","))
          p:wait()
        end)
      end
      assert(done:receive() == "1,2,3" and done:receive() == "1,2,3")
      assert(time.now() - t0 < 1.0, "the two ran at once")
    ]=])
  end)

  it("raises for a split it does not know, and for methods called on the wrong object", function()
    local p = ex:exec("true")
    p:start()
    local s = p:stdout_stream()
    assert.has_error(function() s:scanner("chars") end,
      "bad argument #1 (split) to 'stream:scanner': must be \"lines\", \"words\", \"bytes\" or \"runes\" (got 'chars')")
    local ok, err = pcall(s.scanner, s, 1)
    assert.is_false(ok)
    assert.matches("%(got number%)", err)
    local sc = s:scanner("bytes")
    assert.equals("exec.scanner", getmetatable(sc))
    assert.equals("exec.scanner(bytes)", tostring(sc))
    for _, name in ipairs({ "scan", "text", "err" }) do
      ok, err = pcall(sc[name], s)
      assert.is_false(ok)
      assert.matches("scanner:" .. name .. ": self must be an exec.scanner", err)
    end
    local other = s:scanner("lines")
    assert.is_false(sc.scan(other))
    p:wait()
  end)
end)
