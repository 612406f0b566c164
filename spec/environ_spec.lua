-- exec.environ() and inherit_env: merging into our environment instead of
-- replacing it (env = { GIT_PAGER = "cat" } alone drops HOME and PATH).
local H = require("spec.helper")
local exec = H.exec

describe("exec.environ()", function()
  it("returns a new table with the current environment", function()
    local e = exec.environ()
    assert.equals(os.getenv("PATH"), e.PATH)
    assert.equals(os.getenv("HOME"), e.HOME)
    e.PATH = "changed"
    assert.equals(os.getenv("PATH"), exec.environ().PATH, "a copy, not a view")
  end)

  it("can be merged into env by hand", function()
    local env = exec.environ()
    env.LUA_EXEC_SPEC = "merged"
    local r = exec.run("printf '%s|%s' \"$HOME\" \"$LUA_EXEC_SPEC\"", { env = env })
    assert.equals(os.getenv("HOME") .. "|merged", r.stdout)
  end)
end)

describe("inherit_env", function()
  it("keeps our environment under env (as an exec option)", function()
    local r = exec.run("printf '%s|%s' \"$HOME\" \"$GIT_PAGER\"", { env = { GIT_PAGER = "cat" }, inherit_env = true })
    assert.equals(os.getenv("HOME") .. "|cat", r.stdout)
    -- env alone still replaces the environment
    r = exec.run("printf '%s|%s' \"$HOME\" \"$GIT_PAGER\"", { env = { GIT_PAGER = "cat" } })
    assert.equals("|cat", r.stdout)
  end)

  it("overlays ours with default_env, then env (as a resource option)", function()
    exec.registry.define("environ:merge", { kind = "exec.native", inherit_env = true,
                                            default_env = { A = "default", B = "default" } })
    local ex = exec.get("environ:merge")
    local r = ex:run("printf '%s|%s|%s' \"$HOME\" \"$A\" \"$B\"", { env = { B = "caller" } })
    assert.equals(os.getenv("HOME") .. "|default|caller", r.stdout)
    -- a caller can still ask for the resource's environment alone
    r = ex:run("printf '%s|%s' \"$HOME\" \"$A\"", { inherit_env = false })
    assert.equals("|default", r.stdout)
  end)

  it("is checked like every option", function()
    local ok, err = pcall(exec.run, "true", { inherit_env = "yes" })
    assert.is_false(ok)
    assert.is_truthy(err:find("option inherit_env must be a boolean", 1, true), err)
    ok, err = pcall(exec.registry.define, "environ:bad", { kind = "exec.native", inherit_env = 1 })
    assert.is_false(ok)
    assert.is_truthy(err:find("inherit_env must be a boolean", 1, true), err)
  end)

  it("does not let a caller of a whitelisted resource steer PATH through our environment", function()
    exec.registry.define("environ:wl", { kind = "exec.native", inherit_env = true, command_whitelist = { "true" } })
    local ok, err = pcall(exec.get("environ:wl").run, exec.get("environ:wl"), { "true" }, { env = { PATH = "/tmp" } })
    assert.is_false(ok)
    assert.is_truthy(err:find("env variable 'PATH' cannot be set", 1, true), err)
  end)
end)
