// The one formatter of the repository: `pnpm run format` writes, `pnpm run format:check` fails on any
// file it would change (.prettierignore and .gitignore list what it leaves alone). The settings are
// the code's existing style: double quotes, semicolons, trailing commas, two-space indents, and
// lines up to 200 characters (the tree has many lines of 160-200; measured over every .ts/.js file,
// 200 is the width at which the fewest lines change).
export default {
  printWidth: 200,
  tabWidth: 2,
  useTabs: false,
  semi: true,
  singleQuote: false,
  trailingComma: "all",
  arrowParens: "always",
  bracketSpacing: true,
  endOfLine: "lf",
};
