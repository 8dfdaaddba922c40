// Holds the MCP tools' input schemas to JSON Schema 2020-12 with Ajv (the validator the MCP
// TypeScript SDK uses), strictly: each schema is valid, compiles, and takes the arguments the
// test calls its tool with. Usage: node schemas.cjs <node_modules with ajv> < {tools, calls}.
// Prints nothing and exits 0 when all hold; else each problem, and exits 1.
const path = require("node:path");
const Ajv2020 = require(path.join(process.argv[2], "ajv/dist/2020")).default;

const input = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const ajv = new Ajv2020({ strict: true, allErrors: true, validateFormats: false });
const problems = [];
const validators = new Map();
for (const tool of input.tools) {
  if (!ajv.validateSchema(tool.inputSchema)) {
    problems.push(`${tool.name}: not a valid schema: ${ajv.errorsText(ajv.errors)}`);
    continue;
  }
  try {
    validators.set(tool.name, ajv.compile(tool.inputSchema));
  } catch (error) {
    problems.push(`${tool.name}: does not compile: ${error.message}`);
  }
}
for (const call of input.calls) {
  const validate = validators.get(call.name);
  if (validate && !validate(call.arguments)) {
    problems.push(`${call.name} ${JSON.stringify(call.arguments)}: ${ajv.errorsText(validate.errors)}`);
  }
}
for (const problem of problems) console.log(problem);
process.exit(problems.length ? 1 : 0);
