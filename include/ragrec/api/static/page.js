// The page asks /ask (streamed, server-sent events), lists the citations, and fills the
// "related documents" panel from /recommend/item for the first cited document.
const $ = (id) => document.getElementById(id);

function headers() {
  const h = { "Content-Type": "application/json" };
  const token = $("token").value || localStorage.getItem("ragrec-token");
  if (token) h["Authorization"] = "Bearer " + token;
  return h;
}

function showError(message) {
  $("status").textContent = message;
}

async function init() {
  const health = await (await fetch("/health")).json();
  $("model").textContent = `index ${health.index} · model ${health.model_version || "none"}`;
  $("token-row").hidden = !health.auth;
  $("token").value = localStorage.getItem("ragrec-token") || "";
}

function renderCitations(citations) {
  const list = $("citations");
  list.innerHTML = "";
  for (const c of citations) {
    const li = document.createElement("li");
    li.value = c.number;
    li.dataset.docId = c.doc_id;
    const title = document.createElement("span");
    title.className = "cite-title";
    title.textContent = c.title || c.doc_id;
    const excerpt = document.createElement("span");
    excerpt.className = "excerpt";
    excerpt.textContent = c.text.slice(0, 200);
    li.append(title, ` (${c.doc_id})`, excerpt);
    list.append(li);
  }
}

async function loadRelated(docId) {
  $("related-for").textContent = `for ${docId}`;
  const response = await fetch(`/recommend/item/${encodeURIComponent(docId)}?k=5`,
                               { headers: headers() });
  const list = $("related");
  list.innerHTML = "";
  if (!response.ok) return;
  for (const item of (await response.json()).items) {
    const li = document.createElement("li");
    li.dataset.docId = item.doc_id;
    li.textContent = `${item.title} (${item.doc_id})`;
    list.append(li);
  }
}

function parseEvents(buffer, onEvent) {
  const blocks = buffer.split("\n\n");
  for (const block of blocks.slice(0, -1)) {
    let event = "message", data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("data: ")) data += line.slice(6);
    }
    onEvent(event, data ? JSON.parse(data) : null);
  }
  return blocks[blocks.length - 1];
}

async function ask(question) {
  if ($("token").value) localStorage.setItem("ragrec-token", $("token").value);
  $("answer").textContent = "";
  $("answer").classList.remove("refused");
  $("citations").innerHTML = "";
  $("status").textContent = "Searching…";
  const response = await fetch("/ask", { method: "POST", headers: headers(),
    body: JSON.stringify({ question, stream: true }) });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    showError((body.error && body.error.message) || `error ${response.status}`);
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer = parseEvents(buffer + decoder.decode(value, { stream: true }), (event, data) => {
      if (event === "delta") $("answer").textContent += data.text;
      if (event === "error") showError(data.message);
      if (event === "done") {
        $("status").textContent = data.mode === "refused" ? "No answer" :
          `Answered (${data.mode}) from ${data.citations.length} cited passage(s)`;
        if (data.mode === "refused") $("answer").classList.add("refused");
        renderCitations(data.citations);
        if (data.citations.length) loadRelated(data.citations[0].doc_id);
      }
    });
  }
}

$("ask-form").addEventListener("submit", (event) => {
  event.preventDefault();
  ask($("question").value.trim()).catch((error) => showError(String(error)));
});
init().catch((error) => showError(String(error)));
