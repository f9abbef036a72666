-- Each request submits a new task, w<thread>-<n>: `thread_id` is set per
-- thread by setup (a global of the thread's own Lua state).
local counter = 0
local next_id = 0
setup = function(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end
request = function()
  counter = counter + 1
  local body = string.format('{"task":"w%d-%d"}', thread_id, counter)
  return wrk.format("POST", "/api/v1/tasks", {["Content-Type"]="application/json", ["Authorization"]="Bearer bench-token"}, body)
end
