// Print a served feed as JSON, as the rss-parser npm package reads it.
// Usage: node read_feed.js URL
const Parser = require("rss-parser");

const parser = new Parser({ timeout: 10000 });
parser.parseURL(process.argv[2]).then(
  (feed) => {
    const items = feed.items.map((item) => ({
      title: item.title,
      link: item.link,
      id: item.guid || item.id,
      categories: item.categories || [],
      isoDate: item.isoDate,
    }));
    process.stdout.write(JSON.stringify({ title: feed.title, items }));
  },
  (err) => {
    process.stderr.write(String(err) + "\n");
    process.exit(1);
  },
);
