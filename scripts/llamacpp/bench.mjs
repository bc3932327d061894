// Measures llama.cpp's CPU prefill of a GGUF model through node-llama-cpp:
// one sequence of --tokens random token ids evaluated in one batch, without
// generating, once to warm up and then --runs times; prints the median.
//
//   node bench.mjs --model FILE [--tokens 512] [--threads 2,1] [--runs 5]
//                  [--ctx 1024] [--outputs last,all]
//
// --outputs last: evaluateWithoutGeneratingNewTokens, which flags no
// position as an output, so llama.cpp runs no LM head (docs/MODEL.md,
// "Against llama.cpp"); all: controlledEvaluate asking for every position's
// greedy token and sum of exp(logit - max), so the LM head runs over all
// positions, as in equarx's prefill. CPU time is the process's, over the
// whole call.
import fs from "node:fs";
import os from "node:os";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

function flag(name, def) {
    const i = process.argv.indexOf("--" + name);
    return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const modelPath = flag("model", "");
const nTokens = Number(flag("tokens", "512"));
const threadList = flag("threads", "2,1").split(",").map(Number);
const runs = Number(flag("runs", "5"));
const ctxSize = Number(flag("ctx", "1024"));
const outputs = flag("outputs", "last,all").split(",");
if (!modelPath || !(nTokens > 0) || !(runs > 0) || threadList.some((t) => !(t > 0))) {
    console.error("usage: node bench.mjs --model FILE [--tokens 512] [--threads 2,1] [--runs 5] [--ctx 1024] [--outputs last,all]");
    process.exit(2);
}

// Seeded token ids (mulberry32), skipping the 259 special and byte tokens.
let seed = 0x5eed;
function rand() {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const llama = await getLlama({
    gpu: false,
    build: "never",
    usePrebuiltBinaries: true,
    skipDownload: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.warn,
    maxThreads: Math.max(...threadList)
});
const model = await llama.loadModel({modelPath, gpuLayers: 0});
const nVocab = Number(model.fileInfo.metadata.llama?.vocab_size ?? model.fileInfo.metadata.tokenizer.ggml.tokens.length);
const tokens = Array.from({length: nTokens}, () => 259 + Math.floor(rand() * (Number(nVocab) - 259)));

const cpuLibs = [...new Set(fs.readFileSync("/proc/self/maps", "utf8").split("\n")
    .map((l) => l.match(/\S*libggml-cpu[^/\s]*\.so/)?.[0]).filter(Boolean).map((p) => p.split("/").pop()))];
console.log(`node-llama-cpp ${JSON.parse(fs.readFileSync(new URL("./node_modules/node-llama-cpp/package.json", import.meta.url), "utf8")).version}, ` +
    `llama.cpp release ${llama.llamaCppRelease.release} (${llama.llamaCppRelease.repo}), ${llama.buildType} binaries, gpu ${llama.gpu}`);
console.log(`CPU backend library: ${cpuLibs.join(", ") || "unknown"}; cpuMathCores ${llama.cpuMathCores}; ${os.cpus()[0].model}`);
console.log(`system info: ${llama.systemInfo}`);
console.log(`model: ${modelPath}, ${model.size} bytes, ${nVocab} tokens; prefill of ${nTokens} tokens, context ${ctxSize}, batch ${nTokens}, ${runs} runs after 1 warm-up`);

const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

for (const threads of threadList) {
    const context = await model.createContext({
        contextSize: ctxSize, batchSize: nTokens, sequences: 1,
        threads: {ideal: threads, min: threads}
    });
    const seq = context.getSequence();
    console.log(`threads ${threads} (context reports ${context.currentThreads}), flash attention ${context.flashAttention}`);
    for (const mode of outputs) {
        // once returns the seconds of the batch's decode and, for "all",
        // of the whole call: node-llama-cpp decodes the batch (one
        // llama_decode, logits of every position included) before it reads
        // the first output, then samples the positions one call at a time,
        // so the first result marks the end of the decode.
        const once = async () => {
            await seq.clearHistory();
            const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
            let tFirst;
            if (mode === "all") {
                const res = await seq.controlledEvaluate(tokens.map((t) =>
                    [t, {generateNext: {token: true, totalLogitWeight: true, options: {temperature: 0}}}]), {
                    onTokenResult() { tFirst ??= process.hrtime.bigint(); }
                });
                if (res.filter((r) => r?.next?.totalLogitWeight != null).length !== nTokens)
                    throw new Error("controlledEvaluate returned fewer outputs than tokens");
            } else if (mode === "last") {
                await seq.evaluateWithoutGeneratingNewTokens(tokens);
            } else {
                throw new Error(`unknown --outputs mode ${mode}`);
            }
            const t1 = process.hrtime.bigint(), c = process.cpuUsage(c0);
            return {decode: Number((tFirst ?? t1) - t0) / 1e9, total: Number(t1 - t0) / 1e9, cpu: (c.user + c.system) / 1e6};
        };
        await once();
        const res = [];
        for (let i = 0; i < runs; i++) res.push(await once());
        const m = median(res.map((r) => r.decode));
        let line = `llama.cpp prefill threads=${threads} outputs=${mode}: median ${m.toFixed(3)} s, ${(nTokens / m).toFixed(1)} tok/s ` +
            `(runs ${res.map((r) => (nTokens / r.decode).toFixed(1)).join(" ")} tok/s)`;
        line += `; ${(nTokens / median(res.map((r) => r.cpu))).toFixed(1)} tok/cpu-s over the whole call`;
        if (mode === "all")
            line += `; with the per-position sampling calls ${(nTokens / median(res.map((r) => r.total))).toFixed(1)} tok/s`;
        console.log(line);
    }
    await context.dispose();
}
await model.dispose();
await llama.dispose();
