// Development helper for differential.py: encodes/decodes a batch with moe::Tokenizer.
// Usage: tok_dump <tokenizer.json> [tokenizer_config.json] < request.json > response.json
// request:  {"texts": [...], "id_lists": [[...], ...]}
// response: {"encode": [[...]], "encode_special": [[...]], "decode": [...], "decode_skip": [...],
//            "stream": [...], "seconds_encode": x}
#include <chrono>
#include <iostream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "runtime/tokenizer/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: tok_dump tokenizer.json [tokenizer_config.json] < request.json\n";
    return 2;
  }
  try {
    auto tok = moe::Tokenizer::load(argv[1], argc > 2 ? argv[2] : "");
    std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    auto req = nlohmann::json::parse(input);
    nlohmann::json resp;
    resp["encode"] = nlohmann::json::array();
    resp["encode_special"] = nlohmann::json::array();
    auto t0 = std::chrono::steady_clock::now();
    for (const auto& t : req.value("texts", nlohmann::json::array())) {
      std::string s = t.get<std::string>();
      resp["encode"].push_back(tok.encode(s, false));
      resp["encode_special"].push_back(tok.encode(s, true));
    }
    resp["seconds_encode"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    resp["decode"] = nlohmann::json::array();
    resp["decode_skip"] = nlohmann::json::array();
    resp["stream"] = nlohmann::json::array();
    for (const auto& l : req.value("id_lists", nlohmann::json::array())) {
      auto ids = l.get<std::vector<int32_t>>();
      resp["decode"].push_back(tok.decode(ids, false));
      resp["decode_skip"].push_back(tok.decode(ids, true));
      moe::StreamDecoder sd(tok);
      std::string streamed;
      for (int32_t id : ids) streamed += sd.push(id);
      streamed += sd.finish();
      resp["stream"].push_back(streamed);
    }
    std::cout << resp.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
