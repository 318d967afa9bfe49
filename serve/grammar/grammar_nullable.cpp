// Repetition of something that can be empty: ("a"?)* or (ws)* with ws ::= "" | " ". Lowered as
// R ::= x R | "" it would be left-recursive (R can reach R without a byte), so x{m,n} becomes
// (x')? (x'){0,n-1}... exactly: "" | x'{1,n}, where x' is x without the empty string.
#include <fmt/format.h>

#include <map>
#include <optional>

#include "serve/grammar/grammar.h"

namespace moe::grammar {

namespace {

class NonEmpty {
 public:
  NonEmpty(std::vector<std::string>& names, std::vector<Expr>& exprs, std::vector<bool>& defined)
      : names_(names), exprs_(exprs), defined_(defined) {
    nullable_rule_.assign(exprs_.size(), false);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < exprs_.size(); ++r)
        if (!nullable_rule_[r] && nullable(exprs_[r])) nullable_rule_[r] = changed = true;
    }
  }

  bool nullable(const Expr& e) const {
    switch (e.kind) {
      case Expr::Kind::literal: return e.text.empty();
      case Expr::Kind::bytes:
      case Expr::Kind::chars: return false;
      case Expr::Kind::seq:
        for (const auto& x : e.items)
          if (!nullable(x)) return false;
        return true;
      case Expr::Kind::alt:
        for (const auto& x : e.items)
          if (nullable(x)) return true;
        return false;
      case Expr::Kind::repeat: return e.min == 0 || e.max == 0 || nullable(e.items[0]);
      case Expr::Kind::ref: return e.rule < nullable_rule_.size() && nullable_rule_[e.rule];
    }
    return false;
  }

  // e without the empty string; nullopt when e matches only "".
  std::optional<Expr> strip(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::literal: return e.text.empty() ? std::nullopt : std::optional(e);
      case Expr::Kind::bytes:
      case Expr::Kind::chars: return e;
      case Expr::Kind::seq: {
        std::vector<Expr> alts;  // the first non-empty part is item i; the ones before are ""
        for (size_t i = 0; i < e.items.size(); ++i) {
          if (auto ne = strip(e.items[i])) {
            std::vector<Expr> rest{*ne};
            rest.insert(rest.end(), e.items.begin() + ptrdiff_t(i) + 1, e.items.end());
            alts.push_back(seq(std::move(rest)));
          }
          if (!nullable(e.items[i])) break;
        }
        if (alts.empty()) return std::nullopt;
        return alt(std::move(alts));
      }
      case Expr::Kind::alt: {
        std::vector<Expr> alts;
        for (const auto& x : e.items)
          if (auto ne = strip(x)) alts.push_back(std::move(*ne));
        if (alts.empty()) return std::nullopt;
        return alt(std::move(alts));
      }
      case Expr::Kind::repeat: {
        if (e.max == 0) return std::nullopt;
        auto ne = strip(e.items[0]);
        if (!ne) return std::nullopt;
        return repeat(std::move(*ne), 1, e.max);
      }
      case Expr::Kind::ref: {
        if (!nullable_rule_[e.rule]) return e;
        if (auto it = stripped_.find(e.rule); it != stripped_.end()) return ref(it->second);
        const RuleId r = RuleId(exprs_.size());
        names_.push_back(names_[e.rule] + "_nonempty");
        exprs_.emplace_back();
        defined_.push_back(true);
        nullable_rule_.push_back(false);
        stripped_[e.rule] = r;
        auto body = strip(Expr(exprs_[e.rule]));
        if (!body)
          throw GrammarError(fmt::format("grammar: rule '{}' matches only the empty string, inside a repetition",
                                         names_[e.rule]));
        exprs_[r] = std::move(*body);
        return ref(r);
      }
    }
    return std::nullopt;
  }

  // Rewrites every repeat of a nullable item, inside out.
  void fix(Expr& e) {
    for (auto& x : e.items) fix(x);
    if (e.kind != Expr::Kind::repeat || !nullable(e.items[0])) return;
    auto ne = strip(e.items[0]);
    Expr out = ne ? opt(repeat(std::move(*ne), 1, e.max)) : empty();
    e = std::move(out);
  }

 private:
  std::vector<std::string>& names_;
  std::vector<Expr>& exprs_;
  std::vector<bool>& defined_;
  std::vector<bool> nullable_rule_;
  std::map<RuleId, RuleId> stripped_;
};

}  // namespace

void Builder::fix_nullable_repeats() {
  NonEmpty ne(names_, exprs_, defined_);
  for (size_t r = 0; r < exprs_.size(); ++r) {  // exprs_ may grow: index, not iterator
    Expr e = exprs_[r];
    ne.fix(e);
    exprs_[r] = std::move(e);
  }
}

}  // namespace moe::grammar
