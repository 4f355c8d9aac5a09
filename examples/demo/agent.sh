#!/bin/sh
# The scripted agent of `forgehand demo`, run by Forgehand's `command` adapter in the ticket's
# worktree with the rendered harness on stdin. It prints events in Forgehand's normalized shape
# (one JSON object a line), edits README.md and exits 0; Forgehand commits, pushes and opens the
# pull request. DEMO_STEP_DELAY (seconds) paces it so each step is visible.
delay="${DEMO_STEP_DELAY:-1}"
step() { sleep "$delay"; }

prompt=$(cat)
lines=$(printf '%s\n' "$prompt" | wc -l | tr -d ' ')
echo "{\"kind\":\"session\",\"id\":\"demo-session-$FORGEHAND_TICKET_NUMBER\"}"
echo "{\"kind\":\"message\",\"role\":\"assistant\",\"text\":\"I read the harness ($lines lines) for ticket #$FORGEHAND_TICKET_NUMBER. Let me look at the README.\"}"
step
echo '{"kind":"tool_call","id":"t1","name":"read_file","input":"{\"path\":\"README.md\"}"}'
echo "{\"kind\":\"tool_result\",\"id\":\"t1\",\"output\":\"$(wc -l < README.md | tr -d ' ') lines\",\"is_error\":false}"
step
echo '{"kind":"message","role":"assistant","text":"The greeting skill says greetings go at the end of README.md, starting with Hello."}'
echo '{"kind":"tool_call","id":"t2","name":"edit_file","input":"{\"path\":\"README.md\",\"append\":\"Hello from the Forgehand demo agent!\"}"}'
echo "Hello from the Forgehand demo agent! (ticket #$FORGEHAND_TICKET_NUMBER, run $FORGEHAND_RUN_ID)" >> README.md
echo '{"kind":"tool_result","id":"t2","output":"appended 1 line","is_error":false}'
step
echo '{"kind":"usage","input_tokens":1200,"output_tokens":85,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0,"cost_usd":0.0}'
echo '{"kind":"result","text":"Added a greeting to README.md.","is_error":false}'
